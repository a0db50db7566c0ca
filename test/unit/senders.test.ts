// The senders map's edge cases in the pure directory (the README's table of cases runs in
// test/integration/send-as.test.ts, from the native schema through the sync), and the joining
// of send-as grant rows.

import { describe, expect, it } from 'vitest';
import { createDirectory, emptyData } from '../../src/directory/directory.js';
import { rowAdder } from '../../src/sync/rows.js';

const sorted = (v: string | undefined) => (v === undefined ? [] : v.split(',').sort());

describe('senders in the pure directory', () => {
  const directory = (setup: (d: ReturnType<typeof emptyData>) => void) => {
    const data = emptyData();
    data.domains.set('example.org', true);
    data.mailboxes.set('alice@example.org', { password: null, quotaBytes: 0, active: true });
    data.mailboxes.set('bob@example.org', { password: null, quotaBytes: 0, active: true });
    setup(data);
    const dir = createDirectory({ recipientDelimiter: '+' });
    dir.replaceAll(data);
    return dir;
  };

  it('an alias that copies to its own mailbox: the mailbox and the copy may send as it', () => {
    const dir = directory((d) => d.aliases.set('alice@example.org', 'alice@example.org,bob@example.org'));
    expect(sorted(dir.senders('alice@example.org'))).toEqual(['alice@example.org', 'bob@example.org']);
  });

  it("an address with a delimiter that is a mailbox of its own is not the base mailbox's", () => {
    const dir = directory((d) => {
      d.mailboxes.set('alice+b@example.org', { password: null, quotaBytes: 0, active: true });
      d.routes.set('send_as:alice@example.org', 'bob@example.org');
    });
    expect(dir.senders('alice+b@example.org')).toBe('alice+b@example.org');
    expect(sorted(dir.senders('alice+c@example.org'))).toEqual(['alice@example.org', 'bob@example.org']);
  });

  it('an address met again in an expansion stands for its own mailbox, as in Postfix', () => {
    const dir = directory((d) => {
      d.aliases.set('bob@example.org', 'carol@elsewhere.test');
      d.aliases.set('a@example.org', 'bob@example.org,b@example.org');
      d.aliases.set('b@example.org', 'bob@example.org');
    });
    expect(sorted(dir.senders('a@example.org'))).toEqual(['bob@example.org']);
    expect(dir.senders('b@example.org')).toBeUndefined();
  });

  it('an alias of the address without its extension; an exact alias of the extended address wins', () => {
    const dir = directory((d) => {
      d.aliases.set('list@example.org', 'alice@example.org');
      d.aliases.set('list+eu@example.org', 'bob@example.org');
    });
    expect(dir.senders('list+us@example.org')).toBe('alice@example.org');
    expect(dir.senders('list+eu@example.org')).toBe('bob@example.org');
  });

  it('a destination with an extension or in an alias domain counts for its mailbox; a domain forward and outside addresses for none', () => {
    const dir = directory((d) => {
      d.aliasDomains.set('alias.test', { target: 'example.org', active: true });
      d.aliases.set('fwd@example.org', 'alice+fwd@example.org,bob@alias.test,@elsewhere.test,someone@elsewhere.test');
    });
    expect(sorted(dir.senders('fwd@example.org'))).toEqual(['alice@example.org', 'bob@example.org']);
  });

  it('an expansion stops after 1,000 addresses, as Postfix does', () => {
    const dir = directory((d) => {
      for (let i = 0; i < 1100; i++) d.aliases.set(`l${i}@example.org`, `l${i + 1}@example.org`);
      d.aliases.set('l1100@example.org', 'alice@example.org');
      d.aliases.set('short@example.org', 'l1000@example.org');
    });
    expect(dir.senders('l0@example.org')).toBeUndefined();
    expect(dir.senders('short@example.org')).toBe('alice@example.org');
  });

  it('a domain grant covers the alias domains of its domain', () => {
    const dir = directory((d) => {
      d.aliasDomains.set('alias.test', { target: 'example.org', active: true });
      d.routes.set('send_as:@example.org', 'bob@example.org');
    });
    expect(sorted(dir.senders('anyone+x@alias.test'))).toEqual(['bob@example.org']);
    expect(sorted(dir.senders('alice@alias.test'))).toEqual(['alice@example.org', 'bob@example.org']);
  });

  it('grant rows of one address are joined, each mailbox once (a load and a catch-up alike)', () => {
    const data = emptyData();
    const add = rowAdder(data, 'route');
    for (const r of [
      ['send_as:ceo@example.org', 'Alice@Example.org'],
      ['send_as:ceo@example.org', 'bob@example.org'],
      ['send_as:ceo@example.org', 'alice@example.org'],
      ['sender_bcc:@example.org', 'a@example.org'],
      ['sender_bcc:@example.org', 'b@example.org'],
    ])
      add.add(r);
    add.finish();
    expect(data.routes.get('send_as:ceo@example.org')).toBe('alice@example.org,bob@example.org');
    expect(data.routes.get('sender_bcc:@example.org')).toBe('b@example.org');
  });
});
