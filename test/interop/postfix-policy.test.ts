// The policy door behind a real Postfix: smtpd's check_policy_service asks the door at RCPT
// and at END-OF-MESSAGE over its UNIX socket, keeps the connection for the next request,
// and the door's DUNNO lets the mail through to the next hop (a sink). The check's
// default_action here is a deferral, so mail that arrives proves the door answered. Fails,
// never skips, without Postfix. Runs as root (Postfix's instance).

import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { parseListenAddress } from '../../src/net/listen-address.js';
import { listen, type Listener } from '../../src/net/listener.js';
import { createPolicyHandler } from '../../src/smtpd-policy/protocol.js';
import { freePort } from '../helpers/daemon.js';
import { waitFor } from '../helpers/db.js';
import { masterCf, postfixInstance, type PostfixInstance } from '../helpers/postfix.js';
import { smtpSession } from '../helpers/smtp.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

describe('check_policy_service in a real Postfix against the policy door', { timeout: 60_000 }, () => {
  let pfx: PostfixInstance | undefined;
  let sink: SmtpSink;
  let door: Listener;
  let smtpPort: number;
  let opened = 0;
  const seen: Map<string, string>[] = [];
  const maillog = () => pfx?.maillog() ?? '';

  beforeAll(async () => {
    expect(existsSync('/usr/sbin/postfix'), 'Postfix must be installed (apt-get install postfix)').toBe(true);
    sink = await startSmtpSink();
    pfx = postfixInstance(tmpdir(), 'mailmapd-policy-', ['sock']);
    const socket = join(pfx.dir, 'sock', 'policy');
    door = await listen(
      parseListenAddress(`unix:${socket}`),
      'policy',
      createPolicyHandler({
        service: {
          answer(r) {
            seen.push(new Map(r));
            return 'DUNNO';
          },
        },
        loaded: () => true,
        logger: createLogger('error'),
        metrics: createMetrics(false),
      }),
      { maxConnections: 100, idleTimeoutMs: 60_000, requestTimeoutMs: 10_000 },
      { mode: 0o666, group: '' }, // smtpd runs as postfix
      createLogger('error'),
      { opened: () => opened++ },
    );
    const check = `check_policy_service { unix:${socket}, { default_action = 451 4.3.5 policy door not reached } }`;
    smtpPort = await freePort();
    writeFileSync(
      join(pfx.dir, 'etc', 'main.cf'),
      pfx.mainCf([
        'smtp_dns_support_level = disabled',
        'relay_domains = example.org',
        `transport_maps = inline:{ example.org=smtp:[127.0.0.1]:${sink.port} }`,
        'smtpd_relay_restrictions = reject_unauth_destination',
        `smtpd_recipient_restrictions = ${check}`,
        `smtpd_end_of_data_restrictions = ${check}`,
      ]),
    );
    // Not chrooted: the policy socket is an absolute path outside the queue directory.
    writeFileSync(join(pfx.dir, 'etc', 'master.cf'), masterCf([`127.0.0.1:${smtpPort} inet n - n - - smtpd`]));
    const started = pfx.run('start');
    expect(started.status, `postfix start failed:\n${started.stderr}\n${maillog()}`).toBe(0);
    await waitFor(
      async () => {
        try {
          await (await smtpSession(smtpPort)).close();
          return true;
        } catch {
          return false;
        }
      },
      15_000,
      'Postfix smtpd',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${maillog()}`);
    });
  }, 90_000);

  afterAll(async () => {
    await pfx?.stop();
    await door?.close(100);
    await sink?.close();
    if (pfx) rmSync(pfx.dir, { recursive: true, force: true });
  }, 60_000);

  it('asks the door at RCPT and END-OF-MESSAGE on one kept connection, and DUNNO lets the mail through', async () => {
    const s = await smtpSession(smtpPort);
    try {
      expect((await s.command('EHLO client.test')).code).toBe(250);
      for (const subject of ['first', 'second']) {
        const r = await s.send('sender@remote.test', ['bob@example.org'], `From: sender@remote.test\nTo: bob@example.org\nSubject: ${subject}\n\nhello\n`);
        expect(r.code, `${subject}: ${r.text}\n${maillog()}`).toBe(250);
      }
    } finally {
      await s.close();
    }
    await waitFor(() => sink.messages.length === 2, 15_000, `both messages at the next hop\n${maillog()}`);
    expect(sink.messages.map((m) => m.to)).toEqual([['bob@example.org'], ['bob@example.org']]);

    const states = seen.map((r) => r.get('protocol_state'));
    expect(states).toEqual(['RCPT', 'END-OF-MESSAGE', 'RCPT', 'END-OF-MESSAGE']);
    for (const r of seen) {
      expect(r.get('request')).toBe('smtpd_access_policy');
      expect(r.get('sender')).toBe('sender@remote.test');
      expect(r.get('recipient')).toBe('bob@example.org');
      expect(r.get('client_address')).toBe('127.0.0.1');
      expect(r.get('helo_name')).toBe('client.test');
    }
    expect(seen[1]!.get('recipient_count')).toBe('1');
    expect(Number(seen[1]!.get('size'))).toBeGreaterThan(0);
    // Four requests over the one connection Postfix keeps.
    expect(opened).toBe(1);
    expect(maillog()).not.toMatch(/warning: .*policy/);
  });
});
