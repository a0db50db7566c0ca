// The log line of a sync that cannot reach its database says what is served: "the last
// good copy" only when something is loaded (issue 29, item 7: it said so with loaded=false,
// when every answer was a temporary failure).

import { expect, it } from 'vitest';
import { createDirectory, emptyData } from '../../src/directory/directory.js';
import { createLogger } from '../../src/log.js';
import { startTestSync } from '../helpers/sync.js';

/** The first "database sync interrupted" line of a sync pointed at a closed port. */
async function firstInterruption(loaded: boolean): Promise<string> {
  const lines: string[] = [];
  let seen: (line: string) => void = () => {};
  const first = new Promise<string>((resolve) => (seen = resolve));
  const logger = createLogger('warn', (l) => {
    lines.push(l);
    if (l.includes('database sync interrupted')) seen(l);
  });
  const directory = createDirectory({ recipientDelimiter: '+' });
  if (loaded) directory.replaceAll(emptyData());
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  const { sync } = startTestSync({ databaseUrl: 'postgres://mailmapd@127.0.0.1:1/none', directory, logger });
  try {
    return await first;
  } finally {
    await sync.stop();
  }
}

it('says nothing is served while nothing is loaded', async () => {
  const line = await firstInterruption(false);
  expect(line).not.toMatch(/last good copy/);
  expect(line).toMatch(/nothing loaded yet/);
  expect(line).toMatch(/loaded=false/);
});

it('says the last good copy is served when one is loaded', async () => {
  const line = await firstInterruption(true);
  expect(line).toMatch(/serving the last good copy/);
  expect(line).toMatch(/loaded=true/);
});
