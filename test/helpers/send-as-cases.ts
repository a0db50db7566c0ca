// The README's table of who may send as whom, and the directory it is written for. The
// table is read from README.md itself, so that every rule written down is a rule tested
// (test/integration/send-as.test.ts on the directory, test/interop/postfix-send-as.test.ts through Postfix).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SendAsCase {
  /** The MAIL FROM, as a client types it. */
  sender: string;
  /** The logins the senders map answers, in any order; empty: nobody. */
  logins: string[];
  rule: string;
}

const readme = fileURLToPath(new URL('../../README.md', import.meta.url));

/** Every row of the table between the README's send-as markers. */
export function sendAsCases(): SendAsCase[] {
  const text = readFileSync(readme, 'utf8');
  const start = text.indexOf('<!-- send-as cases');
  const end = text.indexOf('<!-- end of send-as cases -->');
  if (start < 0 || end < start) throw new Error('README.md has no send-as cases table');
  const rows = text
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('| `'));
  return rows.map((row) => {
    const cells = row
      .slice(1, -1)
      .split(' | ')
      .map((c) => c.trim());
    const [sender, logins, rule] = cells as [string, string, string];
    return {
      sender: sender.replace(/`/g, ''),
      logins: logins === 'nobody' ? [] : logins.split(',').map((l) => l.trim().replace(/`/g, '')),
      rule,
    };
  });
}

/** Every mailbox of the example, with its password for SMTP AUTH. */
export const sendAsMailboxes = ['alice@example.org', 'bob@example.org', 'dave@example.org', 'carol@example.org', 'erin@off.test'];

/** The example directory of the README, as native-schema rows (passwords `{PLAIN}<local part>-pw`). */
export const sendAsSeedSql = `
INSERT INTO mailmapd.domains (name, active) VALUES ('example.org', true), ('shop.test', true), ('off.test', false);
INSERT INTO mailmapd.alias_domains (name, target, active) VALUES ('alias.test', 'example.org', true), ('offalias.test', 'example.org', false);
INSERT INTO mailmapd.mailboxes (address, password, active) VALUES
  ('alice@example.org', '{PLAIN}alice-pw', true), ('bob@example.org', '{PLAIN}bob-pw', true),
  ('dave@example.org', '{PLAIN}dave-pw', true), ('carol@example.org', '{PLAIN}carol-pw', false),
  ('erin@off.test', '{PLAIN}erin-pw', true);
INSERT INTO mailmapd.aliases (address, destination) VALUES
  ('info@example.org', 'bob@example.org'),
  ('team@example.org', 'info@example.org'), ('team@example.org', 'dave@example.org'),
  ('all@example.org', 'team@example.org'),
  ('sales@example.org', 'carol@example.org'),
  ('loop1@example.org', 'loop2@example.org'), ('loop2@example.org', 'loop1@example.org'),
  ('@example.org', 'alice@example.org');
INSERT INTO mailmapd.send_as (mailbox, address, active) VALUES
  ('alice@example.org', 'ceo@example.org', true), ('alice@example.org', 'alice@partner.test', true),
  ('carol@example.org', 'ceo@example.org', true), ('bob@example.org', 'ceo@example.org', false),
  ('dave@example.org', '@shop.test', true), ('dave@example.org', 'press@alias.test', true),
  ('erin@off.test', 'news@example.org', true), ('alice@example.org', 'old@off.test', true);
`;
