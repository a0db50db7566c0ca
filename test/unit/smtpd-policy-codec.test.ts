// The policy door's codec alone (no sockets): SMTPD_POLICY_README's name=value lines and
// empty line, requests split at every byte, the bounds, the reply.

import { describe, expect, it } from 'vitest';
import { createPolicyDecoder, encodeAction, MAX_ATTRIBUTES, MAX_REQUEST_BYTES, type PolicyRequest } from '../../src/smtpd-policy/codec.js';

/** A request as Postfix writes it. */
const request = (attrs: Record<string, string>) =>
  Object.entries(attrs)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('') + '\n';

const rcpt = (recipient: string) =>
  request({
    request: 'smtpd_access_policy',
    protocol_state: 'RCPT',
    protocol_name: 'ESMTP',
    sender: 'a@remote.test',
    recipient,
    recipient_count: '0',
    size: '0',
  });

describe('codec', () => {
  const decode = (chunks: Buffer[]) => {
    const d = createPolicyDecoder();
    const got: PolicyRequest[] = [];
    for (const c of chunks) {
      const fault = d.push(c, c.length, (r) => got.push(r));
      if (fault) return { got, fault, idle: d.idle };
    }
    return { got, fault: undefined, idle: d.idle };
  };

  it('reads name=value lines up to the empty line; the name ends at the first =; values may be empty or hold =', () => {
    const { got, idle } = decode([Buffer.from('recipient=x@example.org\nsender=\nccert_subject=CN=a=b\n\n')]);
    expect(got).toEqual([
      new Map([
        ['recipient', 'x@example.org'],
        ['sender', ''],
        ['ccert_subject', 'CN=a=b'],
      ]),
    ]);
    expect(idle).toBe(true);
  });

  it('gives the same requests however the stream is split, and says when one is half-received', () => {
    const text = Buffer.from(rcpt('one@example.org') + rcpt('tw\u00f6@example.org'));
    const whole = decode([text]).got;
    expect(whole.map((r) => r.get('recipient'))).toEqual(['one@example.org', 'tw\u00f6@example.org']);
    for (let cut = 1; cut < text.length; cut++) {
      const r = decode([text.subarray(0, cut), text.subarray(cut)]);
      expect(r.got).toEqual(whole);
    }
    expect(decode([text.subarray(0, 10)]).idle).toBe(false);
    expect(decode([Buffer.from('a=b\n')]).idle).toBe(false); // attributes without their empty line
  });

  it('reads only [0, end) of a reused buffer', () => {
    const d = createPolicyDecoder();
    const got: PolicyRequest[] = [];
    const buf = Buffer.from('a=1\n\nGARBAGE WITHOUT EQUALS\n');
    expect(d.push(buf, 5, (r) => got.push(r))).toBeUndefined();
    expect(got).toEqual([new Map([['a', '1']])]);
  });

  it('refuses a line without a name, too many attributes, a request past its byte bound', () => {
    expect(decode([Buffer.from('hello\n\n')]).fault?.fault).toBe('malformed');
    expect(decode([Buffer.from('=value\n\n')]).fault?.fault).toBe('malformed');
    const many = Array.from({ length: MAX_ATTRIBUTES + 1 }, (_, i) => `a${i}=1\n`).join('');
    expect(decode([Buffer.from(many)]).fault?.fault).toBe('too_many_attributes');
    expect(decode([Buffer.from(Array.from({ length: MAX_ATTRIBUTES }, (_, i) => `a${i}=1\n`).join('') + '\n')]).got).toHaveLength(1);
    // The bound holds without a newline, a byte at a time too.
    expect(decode([Buffer.from(`x=${'y'.repeat(MAX_REQUEST_BYTES)}`)]).fault?.fault).toBe('too_long');
    const trickle = Array.from({ length: MAX_REQUEST_BYTES + 10 }, () => Buffer.from('a'));
    trickle.unshift(Buffer.from('x='));
    expect(decode(trickle).fault?.fault).toBe('too_long');
  });

  it('replies action=<text> and an empty line', () => {
    expect(encodeAction('DUNNO')).toBe('action=DUNNO\n\n');
  });
});
