// A minimal SMTP client for talking to a real Postfix smtpd in tests: one command, one
// (possibly multi-line) reply. No dependency: the tests need only what a mail client sends.

import { connect, type Socket } from 'node:net';
import { onLines } from './lines.js';

export interface SmtpReply {
  code: number;
  /** Every line of the reply, codes stripped, joined with newlines. */
  text: string;
}

export interface SmtpSession {
  greeting: SmtpReply;
  /** Sends one command line (CRLF added) and resolves with its reply. */
  command(line: string): Promise<SmtpReply>;
  /** MAIL FROM, RCPT TO each recipient, DATA; resolves with the reply to the message's final dot. */
  send(from: string, to: string[], message: string): Promise<SmtpReply>;
  close(): Promise<void>;
}

export function smtpSession(port: number, host = '127.0.0.1'): Promise<SmtpSession> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, host);
    const lines: string[] = [];
    let waiting: { resolve: (r: SmtpReply) => void; reject: (e: Error) => void } | undefined;
    // A server that stops answering fails the test at once instead of at the test's timeout.
    const fail = (err: Error) => {
      const w = waiting;
      waiting = undefined;
      w?.reject(err);
    };
    socket.setTimeout(10_000, () => socket.destroy(new Error('no SMTP reply within 10 s')));
    socket.on('error', fail);
    socket.on('close', () => fail(new Error(`SMTP connection closed${lines.length ? `: ${lines.join(' ')}` : ''}`)));
    socket.setEncoding('utf8');
    onLines(
      socket,
      (line) => {
        lines.push(line.slice(4));
        // "250-..." continues a reply, "250 ..." ends it.
        if (line[3] !== '-') {
          const reply = { code: Number(line.slice(0, 3)), text: lines.splice(0).join('\n') };
          const w = waiting;
          waiting = undefined;
          w?.resolve(reply);
        }
      },
      '\r\n',
    );
    const next = () => new Promise<SmtpReply>((resolve, reject) => (waiting = { resolve, reject }));
    const command = (line: string) => {
      const reply = next();
      socket.write(`${line}\r\n`);
      return reply;
    };
    next().then((greeting) => {
      resolve({
        greeting,
        command,
        async send(from, to, message) {
          const mail = await command(`MAIL FROM:<${from}>`);
          if (mail.code !== 250) return mail;
          for (const rcpt of to) {
            const r = await command(`RCPT TO:<${rcpt}>`);
            if (r.code !== 250) return r;
          }
          const data = await command('DATA');
          if (data.code !== 354) return data;
          const body = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
          return command(`${body}\r\n.`);
        },
        close: () =>
          new Promise((done) => {
            socket.once('close', () => done());
            socket.end('QUIT\r\n');
          }),
      });
    }, reject);
  });
}

/** Resolves once an SMTP server answers a greeting on `port` (a Postfix just started), or throws after `ms`. */
export async function waitForSmtp(port: number, ms: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await (await smtpSession(port)).close();
      return;
    } catch (err) {
      if (Date.now() - t0 > ms) throw new Error(`no SMTP server on port ${port} after ${ms} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
