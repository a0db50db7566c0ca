// The checkpassword wire alone (no sockets, no C program): frames, request fields, replies,
// and what is refused, as the daemon and mailmapd-checkpassword (checkpassword.c) share them.

import { describe, expect, it } from 'vitest';
import {
  createFrameReader,
  createRequestDecoder,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type CheckpasswordRequest,
} from '../../src/checkpassword/wire.js';

const req: CheckpasswordRequest = {
  mode: 'auth',
  user: 'jörg@example.org',
  password: 'p\tw=rd',
  service: 'imap',
  remoteIp: '192.0.2.1',
  localIp: '127.0.0.1',
  secured: true,
  loginUser: '',
};

const body = (frame: Buffer) => frame.subarray(4);

describe('requests', () => {
  it('round-trip every field; the frame is a 4-byte big-endian length and NUL-terminated fields', () => {
    const f = encodeRequest(req);
    expect(f.readUInt32BE(0)).toBe(f.length - 4);
    expect(f[f.length - 1]).toBe(0);
    expect(decodeRequest(body(f))).toEqual(req);
    expect(decodeRequest(body(encodeRequest({ ...req, mode: 'lookup', secured: false, loginUser: 'master' })))).toEqual({
      ...req,
      mode: 'lookup',
      secured: false,
      loginUser: 'master',
    });
  });

  it('takes the 8 fields of a program older than login_user', () => {
    const eight = Buffer.from(['1', 'auth', 'u@example.org', 'pw', 'smtp', '', '', ''].map((f) => `${f}\0`).join(''));
    expect(decodeRequest(eight)).toMatchObject({ user: 'u@example.org', password: 'pw', loginUser: '' });
  });

  it('refuses an unterminated field, a wrong count, another version, an unknown mode, invalid UTF-8', () => {
    const fields = (xs: (string | Buffer)[]) => Buffer.concat(xs.flatMap((x) => [Buffer.from(x), Buffer.from([0])]));
    expect(decodeRequest(Buffer.from('1\0auth'))).toMatchObject({ fault: 'malformed' });
    expect(decodeRequest(fields(['1', 'auth']))).toMatchObject({ fault: 'malformed' });
    expect(decodeRequest(fields(['2', 'auth', 'u', 'p', 's', '', '', '', '']))).toMatchObject({ fault: 'malformed' });
    expect(decodeRequest(fields(['1', 'hack', 'u', 'p', 's', '', '', '', '']))).toMatchObject({ fault: 'malformed' });
    expect(decodeRequest(fields(['1', 'auth', 'u', Buffer.from([0xff, 0xfe]), 's', '', '', '', '']))).toMatchObject({
      fault: 'malformed',
      reason: 'invalid UTF-8',
    });
  });
});

describe('replies', () => {
  it('ok with fields, fail, temp with a reason; NUL inside a value is dropped', () => {
    const ok = encodeReply({
      code: 'ok',
      fields: [
        ['user', 'a@example.org'],
        ['home', '/h\0x'],
      ],
    });
    expect(decodeReply(body(ok))).toEqual({
      code: 'ok',
      fields: [
        ['user', 'a@example.org'],
        ['home', '/hx'],
      ],
    });
    expect(decodeReply(body(encodeReply({ code: 'fail' })))).toEqual({ code: 'fail' });
    expect(decodeReply(body(encodeReply({ code: 'temp', reason: 'db away' })))).toEqual({ code: 'temp', reason: 'db away' });
  });

  it('a reply larger than the C side takes becomes a temporary failure that says so', () => {
    const big = encodeReply({ code: 'ok', fields: [['home', 'x'.repeat(70_000)]] });
    expect(decodeReply(body(big))).toEqual({ code: 'temp', reason: 'reply too large' });
  });
});

describe('frames from a byte stream', () => {
  it('reassembles frames split at every byte and several in one read', () => {
    const two = Buffer.concat([encodeRequest(req), encodeRequest({ ...req, user: 'b@example.org' })]);
    const r = createFrameReader(4096);
    const got: Buffer[] = [];
    for (let i = 0; i < two.length; i++) {
      const out = r.push(two.subarray(i, i + 1));
      if (!Array.isArray(out)) throw new Error(out.reason);
      got.push(...out);
      expect(r.pending === 0).toBe(i === two.length - 1 || i === encodeRequest(req).length - 1);
    }
    expect(got.map((b) => (decodeRequest(b) as CheckpasswordRequest).user)).toEqual(['jörg@example.org', 'b@example.org']);
    const whole = createFrameReader(4096).push(two);
    expect(Array.isArray(whole) && whole.length).toBe(2);
  });

  it('refuses a frame announcing more than the bound before its body arrives', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(5000);
    expect(createFrameReader(4096).push(head)).toMatchObject({ fault: 'too_large' });
  });

  it('as a Decoder: decoded requests in order, then the fault of a malformed frame', () => {
    const d = createRequestDecoder(4096);
    const bad = Buffer.from([0, 0, 0, 2, 0x31, 0x00]);
    const chunk = Buffer.concat([encodeRequest(req), bad, Buffer.alloc(10)]);
    const got: CheckpasswordRequest[] = [];
    expect(d.push(chunk, chunk.length - 10, (r) => got.push(r))).toMatchObject({ fault: 'malformed' });
    expect(got).toEqual([req]);
  });
});
