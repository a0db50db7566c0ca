// The auth-client codec alone (no sockets): each client line parsed as Dovecot's server
// reads it, each reply and the greeting written as Postfix and doveadm expect them, and the
// tab-line wire under both.

import { describe, expect, it } from 'vitest';
import { decodeBase64, parseClientLine, serializeHandshake, serializeReply } from '../../src/authclient/codec.js';
import { createLineDecoder, createLineSplitter, tabEscape, tabLine, tabUnescape } from '../../src/net/tab-line.js';

describe('client lines', () => {
  it('VERSION, CPID, CANCEL', () => {
    expect(parseClientLine('VERSION\t1\t2', 0)).toEqual({ kind: 'version', major: 1, minor: 2 });
    expect(parseClientLine('CPID\t4242', 2)).toEqual({ kind: 'cpid', pid: 4242 });
    expect(parseClientLine('CANCEL\t7', 2)).toEqual({ kind: 'cancel', id: 7 });
    expect(parseClientLine('VERSION\t1', 0)).toMatchObject({ kind: 'invalid', fault: 'malformed' });
    expect(parseClientLine('VERSION\tx\t0', 0)).toMatchObject({ kind: 'invalid', fault: 'malformed' });
  });

  it('AUTH with its parameters; the mechanism upper-cased; unknown parameters ignored', () => {
    expect(parseClientLine('AUTH\t1\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1\tsecured\tno-penalty\tresp=AGEAYg==', 2)).toEqual({
      kind: 'auth',
      id: 1,
      mech: 'PLAIN',
      params: { service: 'smtp', lip: '127.0.0.1', rip: '192.0.2.1', secured: true, noPenalty: true, resp: 'AGEAYg==' },
    });
  });

  it('an empty resp= is no initial response before 1.2 and an empty one from 1.2; resp== is always empty', () => {
    const params = (line: string, minor: number) => (parseClientLine(line, minor) as { params: { resp?: string } }).params;
    expect(params('AUTH\t1\tPLAIN\tservice=smtp\tresp=', 0).resp).toBeUndefined();
    expect(params('AUTH\t1\tPLAIN\tservice=smtp\tresp=', 2).resp).toBe('');
    expect(params('AUTH\t1\tPLAIN\tservice=smtp\tresp==', 0).resp).toBe('');
  });

  it('refuses what Dovecot refuses: no service, parameters after resp=, id 0 or past 32 bits, CONT without data, unknown commands', () => {
    expect(parseClientLine('AUTH\t1\tPLAIN', 2)).toMatchObject({ kind: 'invalid', fault: 'malformed' });
    expect(parseClientLine('AUTH\t1\tPLAIN\tservice=smtp\tresp=AA==\tsecured', 2)).toMatchObject({ kind: 'invalid', fault: 'malformed' });
    expect(parseClientLine('AUTH\t0\tPLAIN\tservice=smtp', 2)).toMatchObject({ kind: 'invalid' });
    expect(parseClientLine('AUTH\t4294967296\tPLAIN\tservice=smtp', 2)).toMatchObject({ kind: 'invalid' });
    expect(parseClientLine('AUTH\t4294967295\tPLAIN\tservice=smtp', 2)).toMatchObject({ kind: 'auth', id: 4294967295 });
    expect(parseClientLine('CONT\t1', 2)).toMatchObject({ kind: 'invalid', fault: 'malformed' });
    expect(parseClientLine('CONT\t1\tAA==', 2)).toEqual({ kind: 'cont', id: 1, data: 'AA==' });
    expect(parseClientLine('HELLO', 2)).toMatchObject({ kind: 'invalid', fault: 'unknown_command' });
  });

  it('unescapes parameter values', () => {
    expect(parseClientLine('AUTH\t1\tPLAIN\tservice=a\x01tb', 2)).toMatchObject({ params: { service: 'a\tb' } });
  });
});

describe('server lines', () => {
  it('OK, CONT and FAIL, with temp_fail sent both ways and user names escaped', () => {
    expect(serializeReply({ kind: 'ok', id: 3, user: 'a@example.org' })).toBe('OK\t3\tuser=a@example.org\n');
    expect(serializeReply({ kind: 'cont', id: 3, data: 'VXNlcm5hbWU6' })).toBe('CONT\t3\tVXNlcm5hbWU6\n');
    expect(serializeReply({ kind: 'fail', id: 3, user: 'x\ty' })).toBe('FAIL\t3\tuser=x\x01ty\n');
    expect(serializeReply({ kind: 'fail', id: 3, code: 'temp_fail', reason: 'later' })).toBe('FAIL\t3\tcode=temp_fail\ttemp\treason=later\n');
    expect(serializeReply({ kind: 'fail', id: 3, code: 'invalid_base64' })).toBe('FAIL\t3\tcode=invalid_base64\n');
  });

  it('the greeting lists every MECH before SPID (Postfix takes SPID-before-MECH for the wrong socket) and ends with DONE', () => {
    const g = serializeHandshake({ pid: 10, cuid: 2, cookie: 'c0ffee', mechanisms: ['PLAIN', 'LOGIN'] });
    expect(g).toBe('VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t10\nCUID\t2\nCOOKIE\tc0ffee\nDONE\n');
  });
});

describe('base64', () => {
  it('takes canonical padded base64 only', () => {
    expect(decodeBase64('AGEAYg==')?.toString('latin1')).toBe('\0a\0b');
    expect(decodeBase64('')?.length).toBe(0);
    for (const bad of ['AGEAYg', 'AGEAYg=', 'AG EAYg==', 'AGEA*g==', '====']) expect(decodeBase64(bad)).toBeUndefined();
  });
});

describe('the tab-line wire', () => {
  it('escapes and unescapes every special character, and writes a line of fields', () => {
    const nasty = 'a\x01b\tc\nd\re';
    expect(tabEscape(nasty)).toBe('a\x011b\x01tc\x01nd\x01re');
    expect(tabUnescape(tabEscape(nasty))).toBe(nasty);
    expect(tabUnescape('x\x010y')).toBe('x\0y');
    expect(tabLine(['F1', 'a\tb'])).toBe('F1\ta\x01tb\n');
  });

  it('splits lines across reads, holds a partial line, and refuses one past the bound', () => {
    const s = createLineSplitter(8);
    expect(s.push(Buffer.from('ab\ncd'))).toEqual(['ab']);
    expect(s.pending).toBe(2);
    expect(s.push(Buffer.from('e\n\n'))).toEqual(['cde', '']);
    expect(s.pending).toBe(0);
    expect(s.push(Buffer.from('123456789'))).toBeUndefined();
  });

  it('as a Decoder: reads only [0, end) of a reused buffer and says when a line is half-received', () => {
    const d = createLineDecoder(64);
    const got: string[] = [];
    const buf = Buffer.from('one\ntw\nGARBAGE');
    expect(d.push(buf, 6, (l) => got.push(l))).toBeUndefined();
    expect(got).toEqual(['one']);
    expect(d.idle).toBe(false);
    buf.write('o\n', 0);
    expect(d.push(buf, 2, (l) => got.push(l))).toBeUndefined();
    expect(got).toEqual(['one', 'two']);
    expect(d.idle).toBe(true);
    expect(createLineDecoder(4).push(Buffer.from('toolong'), 7, () => {})).toEqual({ fault: 'line_too_long', detail: 'line too long' });
  });
});
