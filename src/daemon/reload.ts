// SIGHUP: read the config again, apply what can change while running (log level, recipient
// delimiter, listener addresses), and name what needs a restart. A rejected config keeps
// the running one; the directory is never reloaded.

import { loadConfig, type Config } from '../config.js';
import type { Directory } from '../directory/directory.js';
import { errorMessage, type Logger } from '../log.js';
import type { Listeners } from './listeners.js';
import { planReload } from './reload-plan.js';

export function createReload(deps: {
  configPath: string | undefined;
  config: { get(): Config; set(c: Config): void };
  directory: Directory;
  listeners: Listeners;
  logger: Logger;
}): () => Promise<void> {
  const { config, directory, listeners, logger } = deps;
  return async () => {
    let next: Config;
    try {
      next = loadConfig({ path: deps.configPath });
    } catch (err) {
      logger.error('SIGHUP: config rejected; keeping the running one', { error: errorMessage(err) });
      return;
    }
    const plan = planReload(config.get(), next);
    config.set(next);
    logger.setLevel(next.log_level);
    directory.setRecipientDelimiter(next.recipient_delimiter);
    await listeners.reconcile();
    logger.info('configuration reloaded', {
      listeners: listeners.summary(),
      changed: plan.applied.length > 0 ? plan.applied.join(',') : undefined,
      restart_needed_for: plan.restartNeeded.length > 0 ? plan.restartNeeded.join(',') : undefined,
    });
  };
}
