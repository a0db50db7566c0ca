// The routing maps' answers from the directory, for the keys a real Postfix sends them
// (test/interop/postfix-routing.test.ts watched them on the wire): transport and relay_recipients
// get the full recipient, extension and case included, and transport also `*`;
// relay_domains a bare domain; sender_relayhost the full sender, and `<>` for the null
// sender; sender_relay_credentials the full sender. Expected answers are written out by hand.

import { describe, expect, it } from 'vitest';
import { createDirectory, emptyData } from '../../src/directory/directory.js';

function directory() {
  const d = emptyData();
  d.domains.set('example.org', true);
  d.routes.set('domain_transport:special.test', 'smtp:[mx2.example.net]:25');
  d.routes.set('relay_domain:relay.test', 'relay:[primary.relay.test]');
  d.routes.set('relay_domain:open.test', '');
  d.routes.set('relay_recipient:known@relay.test', '');
  d.routes.set('relay_recipient:@listed.test', '');
  d.routes.set('relay_domain:listed.test', '');
  d.routes.set('sender_relayhost:alice@example.org', '[smtp.provider.test]:587');
  d.routes.set('sender_credentials:alice@example.org', 'alice:pw');
  d.routes.set('sender_relayhost:@example.org', '[smtp.other.test]:587');
  const dir = createDirectory({ recipientDelimiter: '+' });
  dir.replaceAll(d);
  return dir;
}

describe('routing maps', () => {
  const dir = directory();
  const cases: [string, string, string | undefined][] = [
    ['transport', 'someone@special.test', 'smtp:[mx2.example.net]:25'],
    ['transport', 'Someone+Tag@Special.TEST', 'smtp:[mx2.example.net]:25'],
    ['transport', 'special.test', 'smtp:[mx2.example.net]:25'],
    ['transport', 'x@relay.test', 'relay:[primary.relay.test]'],
    ['transport', 'x@open.test', undefined], // a relay domain without a transport: Postfix's default
    ['transport', 'alice@example.org', undefined],
    ['transport', '*', undefined],
    ['transport', '', undefined],
    ['relay_domains', 'relay.test', 'relay.test'],
    ['relay_domains', 'Open.Test', 'open.test'],
    ['relay_domains', 'example.org', undefined],
    ['relay_domains', 'x@relay.test', undefined],
    ['relay_recipients', 'known@relay.test', 'known@relay.test'],
    ['relay_recipients', 'Known+tag@Relay.TEST', 'known+tag@relay.test'],
    ['relay_recipients', 'unknown@relay.test', undefined],
    ['relay_recipients', 'anyone@open.test', 'anyone@open.test'], // lists none: every address
    ['relay_recipients', 'anyone@listed.test', 'anyone@listed.test'], // @domain listed
    ['relay_recipients', 'someone@example.org', undefined], // not a relay domain
    ['relay_recipients', '@relay.test', undefined],
    ['sender_relayhost', 'alice@example.org', '[smtp.provider.test]:587'],
    ['sender_relayhost', 'alice+list@example.org', '[smtp.provider.test]:587'],
    ['sender_relayhost', 'bob@example.org', '[smtp.other.test]:587'],
    ['sender_relayhost', 'bob@elsewhere.test', undefined],
    ['sender_relayhost', '<>', undefined],
    ['sender_relay_credentials', 'ALICE@example.org', 'alice:pw'],
    ['sender_relay_credentials', 'alice+x@example.org', 'alice:pw'],
    ['sender_relay_credentials', 'bob@example.org', undefined], // @example.org has a host, no credentials
    ['sender_relay_credentials', '[smtp.provider.test]:587', undefined], // next-hop keys
  ];
  for (const [map, key, want] of cases) {
    it(`${map} ${JSON.stringify(key)} → ${want ?? 'NOTFOUND'}`, () => {
      expect(dir.lookup(map as never, key)).toBe(want);
    });
  }

  it('a relay domain that starts listing recipients stops taking the others; removing the last takes every address again', () => {
    const d = directory();
    expect(d.lookup('relay_recipients', 'x@open.test')).toBe('x@open.test');
    d.setRoute('relay_recipient:only@open.test', '');
    expect(d.lookup('relay_recipients', 'x@open.test')).toBeUndefined();
    expect(d.lookup('relay_recipients', 'only@open.test')).toBe('only@open.test');
    d.setRoute('relay_recipient:only@open.test', undefined);
    expect(d.lookup('relay_recipients', 'x@open.test')).toBe('x@open.test');
    d.setRoute('relay_domain:open.test', undefined);
    expect(d.lookup('relay_recipients', 'x@open.test')).toBeUndefined();
    expect(d.lookup('relay_domains', 'open.test')).toBeUndefined();
  });
});
