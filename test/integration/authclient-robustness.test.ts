// Bad input on the auth socket: overlong lines, unknown commands and mechanisms, bad base64,
// AUTH before VERSION, duplicate ids, fuzzed lines, thousands of parallel connections. Each
// gets a FAIL or a closed connection — never a crash, never an OK — and every other
// connection goes on. Plus the codec on its own: escaping round-trips, the parser never
// throws, the line splitter never buffers more than its bound.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBase64, parseClientLine } from '../../src/authclient/codec.js';
import { createLineSplitter, tabEscape, tabUnescape } from '../../src/net/tab-line.js';
import { closePool, lineClient, plain, startDoors, type Doors } from '../helpers/logins.js';

afterAll(closePool);

const hello = 'VERSION\t1\t0\nCPID\t1\n';

describe('codec', () => {
  it('tab escaping round-trips and leaves no TAB, LF or CR on the wire', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const e = tabEscape(s);
        expect(e).not.toMatch(/[\t\n\r]/);
        expect(tabUnescape(e)).toBe(s);
      }),
    );
  });

  it('the line parser never throws, and only well-formed AUTH lines become AUTH', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.integer({ min: 0, max: 3 }), (line, minor) => {
        const m = parseClientLine(line, minor);
        if (m.kind === 'auth') {
          expect(line.startsWith('AUTH\t')).toBe(true);
          expect(m.id).toBeGreaterThan(0);
          expect(m.params.service).not.toBe('');
        }
      }),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.constantFrom(
            'AUTH',
            'CONT',
            'CANCEL',
            'VERSION',
            'CPID',
            '1',
            '0',
            'PLAIN',
            'service=smtp',
            'resp=',
            'resp==',
            'resp=AAAA',
            '',
            'x=y',
            '4294967296',
          ),
          { maxLength: 8 },
        ),
        (fields) => {
          parseClientLine(fields.join('\t'), 2);
        },
      ),
    );
  });

  it('empty resp= means "no initial response" for Postfix (1.0) and "empty" for 1.2; resp== is always empty', () => {
    const line = 'AUTH\t1\tPLAIN\tservice=smtp\tresp=';
    const absent = parseClientLine(line, 0);
    expect(absent.kind === 'auth' && !('resp' in absent.params)).toBe(true);
    expect(parseClientLine(line, 2)).toMatchObject({ kind: 'auth', params: { resp: '' } });
    expect(parseClientLine(`${line}=`, 0)).toMatchObject({ kind: 'auth', params: { resp: '' } });
    expect(parseClientLine('AUTH\t1\tPLAIN\tservice=smtp\tresp=AAAA\tsecured', 0)).toMatchObject({ kind: 'invalid' });
    expect(parseClientLine('AUTH\t1\tPLAIN\trip=1.2.3.4', 0)).toMatchObject({ kind: 'invalid' });
    expect(parseClientLine('AUTH\t0\tPLAIN\tservice=smtp', 0)).toMatchObject({ kind: 'invalid' });
  });

  it('base64 must be canonical', () => {
    expect(decodeBase64('AHVAZXhhbXBsZQBw')?.toString('latin1')).toBe('\0u@example\0p');
    for (const bad of ['AAA', 'A===', '!!!!', 'AA AA', 'AAAA\n', 'AA=A']) expect(decodeBase64(bad)).toBeUndefined();
    expect(decodeBase64('')?.length).toBe(0);
  });

  it('the line splitter reassembles split lines and refuses to buffer past its bound', () => {
    const s = createLineSplitter(10);
    expect(s.push(Buffer.from('ab'))).toEqual([]);
    expect(s.push(Buffer.from('c\nde\nf'))).toEqual(['abc', 'de']);
    expect(s.push(Buffer.from('0123456789'))).toBeUndefined();
    expect(createLineSplitter(10).push(Buffer.from('01234567890\n'))).toBeUndefined();
  });
});

describe('bad input on the socket', () => {
  let doors: Doors;
  beforeAll(async () => {
    doors = await startDoors({ failureDelayMs: 0, maxRequestBytes: 4096 });
  });
  afterAll(() => doors.close());

  async function expectClosedWithoutOk(input: string | Buffer) {
    const c = await lineClient(doors.authSocket);
    c.socket.write(input);
    await c.closed;
    expect(c.lines.filter((l) => l.startsWith('OK'))).toEqual([]);
    return c;
  }

  it('300 failed logins from one client write a handful of lines, not 300 (issue 29, 7a)', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(hello);
    // In batches below the per-connection bound on requests in flight.
    for (let batch = 0; batch < 3; batch++) {
      let auth = '';
      for (let i = batch * 100 + 1; i <= batch * 100 + 100; i++) {
        auth += `AUTH\t${i}\tPLAIN\tservice=imap\trip=192.0.2.77\tresp=${plain(`nosuch${i}@example.org`, 'guess')}\n`;
      }
      c.send(auth);
      await c.waitFor((l) => l.startsWith(`FAIL\t${batch * 100 + 100}\t`), 60_000);
    }
    const failed = doors.logs.filter((l) => l.includes('msg="login failed') && l.includes('rip=192.0.2.77'));
    // 5 per 10 s window and address, then a count: a slow machine may see a second window.
    expect(failed.length).toBeGreaterThanOrEqual(5);
    expect(failed.length).toBeLessThanOrEqual(12);
    c.close();
  });

  it('AUTH before VERSION closes the connection', async () => {
    await expectClosedWithoutOk(`AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret')}\n`);
  });

  it('an incompatible major version closes the connection', async () => {
    await expectClosedWithoutOk('VERSION\t2\t0\n');
  });

  it('an unknown command, an unknown mechanism, a malformed AUTH, a duplicate id close the connection', async () => {
    await expectClosedWithoutOk(hello + 'HELLO\tworld\n');
    await expectClosedWithoutOk(hello + 'AUTH\t1\tCRAM-MD5\tservice=smtp\n');
    await expectClosedWithoutOk(hello + 'AUTH\t1\tPLAIN\n');
    await expectClosedWithoutOk(hello + `AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret')}\tsecured\n`);
    await expectClosedWithoutOk(hello + 'AUTH\t1\tLOGIN\tservice=smtp\nAUTH\t1\tLOGIN\tservice=smtp\n');
  });

  it('counts each closed connection under a fixed kind, not under the sentence it logs', async () => {
    await expectClosedWithoutOk('CPID\t1\n');
    const text = await doors.metrics.registry.metrics();
    const labels = [...text.matchAll(/mailmapd_connections_bad_input_total\{listener="auth",reason="([^"]*)"\}/g)].map((m) => m[1]);
    expect(labels).toContain('out_of_order');
    const kinds = [
      'malformed',
      'unknown_command',
      'line_too_long',
      'out_of_order',
      'incompatible_version',
      'duplicate_id',
      'too_many_requests',
      'unsupported_mechanism',
    ];
    for (const l of labels) expect(kinds).toContain(l);
  });

  it('an overlong line, even without a newline, closes the connection and counts it', async () => {
    await expectClosedWithoutOk(hello + `AUTH\t1\tPLAIN\tservice=smtp\tresp=${'A'.repeat(8192)}\n`);
    await expectClosedWithoutOk(hello + 'A'.repeat(10_000));
    expect(await doors.metrics.registry.metrics()).toMatch(/mailmapd_connections_bad_input_total\{listener="auth",reason="line_too_long"\} 2/);
  });

  it('PLAIN with a wrong shape, NULs in LOGIN, invalid UTF-8 get FAIL', async () => {
    const c = await lineClient(doors.authSocket);
    c.send(hello);
    const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
    c.send(`AUTH\t1\tPLAIN\tservice=smtp\tresp=${b64('user@example.org\0secret')}\n`);
    c.send(`AUTH\t2\tPLAIN\tservice=smtp\tresp=${b64('\0user@example.org\0secret\0x')}\n`);
    c.send(`AUTH\t3\tPLAIN\tservice=smtp\tresp=${b64('\0\0secret')}\n`);
    c.send(`AUTH\t4\tLOGIN\tservice=smtp\tresp=${b64('user@example.org\0secret')}\n`);
    c.send(`AUTH\t5\tPLAIN\tservice=smtp\tresp=${b64(Buffer.from([0, 0x75, 0, 0xff, 0xfe]))}\n`);
    c.send(`AUTH\t6\tPLAIN\tservice=smtp\tresp==\n`);
    for (let id = 1; id <= 6; id++) expect(await c.waitFor((l) => new RegExp(`^(OK|FAIL|CONT)\\t${id}(\\t|$)`).test(l))).toMatch(new RegExp(`^FAIL\\t${id}`));
    c.close();
  });

  it('fuzzed lines after VERSION never produce an OK, and the server keeps serving', async () => {
    const samples = fc.sample(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replace(/\n/g, '')),
        fc
          .tuple(fc.integer({ min: 1, max: 50 }), fc.constantFrom('PLAIN', 'LOGIN'), fc.base64String({ maxLength: 80 }), fc.boolean())
          .map(([id, mech, resp, withResp]) => `AUTH\t${id}\t${mech}\tservice=smtp${withResp ? `\tresp=${resp}` : ''}`),
        fc.tuple(fc.integer({ min: 1, max: 50 }), fc.base64String({ maxLength: 80 })).map(([id, d]) => `CONT\t${id}\t${d}`),
      ),
      { numRuns: 600, seed: 42 },
    );
    for (let i = 0; i < samples.length; i += 30) {
      const c = await lineClient(doors.authSocket);
      c.send(hello + samples.slice(i, i + 30).join('\n') + '\n');
      await Promise.race([c.closed, new Promise((r) => setTimeout(r, 100))]);
      expect(c.lines.filter((l) => l.startsWith('OK'))).toEqual([]);
      c.close();
    }
    const c = await lineClient(doors.authSocket);
    c.send(hello + `AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', 'secret')}\n`);
    expect(await c.waitFor((l) => l.startsWith('OK\t1'))).toBe('OK\t1\tuser=user@example.org');
    c.close();
  });

  it('2000 connections open at once, each logging in', { timeout: 60_000 }, async () => {
    const n = 2000;
    // Opened in waves (the kernel caps the listen backlog), then all held open while every one logs in.
    const clients = [];
    const greeted = async () => {
      const c = await lineClient(doors.authSocket);
      await c.waitFor((l) => l === 'DONE');
      return c;
    };
    for (let i = 0; i < n; i += 100) clients.push(...(await Promise.all(Array.from({ length: 100 }, greeted))));
    const results = await Promise.all(
      clients.map(async (c, i) => {
        c.send(hello + `AUTH\t1\tPLAIN\tservice=smtp\tresp=${plain('user@example.org', i % 2 ? 'secret' : 'wrong')}\n`);
        const line = await c.waitFor((l) => /^(OK|FAIL)\t1\t/.test(l), 30_000);
        return line.split('\t')[0] === (i % 2 ? 'OK' : 'FAIL');
      }),
    );
    for (const c of clients) c.close();
    expect(results.length).toBe(n);
    expect(results.filter((r) => !r)).toEqual([]);
  });
});
