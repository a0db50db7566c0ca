// A small SMTP server standing in for a relay host or a next hop in tests: it accepts every
// message and records what it was told — the AUTH login and password, MAIL FROM, RCPT TO,
// the message — so a test can check where a real Postfix sent a message and how it logged
// in. With `auth` set it offers AUTH PLAIN and LOGIN and refuses mail until a client has
// authenticated with those credentials.

import { createServer, type Server, type Socket } from 'node:net';
import { onLines } from './lines.js';

export interface SinkMessage {
  /** `user:password` the client authenticated with, or undefined without AUTH. */
  auth: string | undefined;
  from: string;
  to: string[];
  data: string;
}

export interface SmtpSink {
  port: number;
  messages: SinkMessage[];
  close(): Promise<void>;
}

export async function startSmtpSink(opts: { auth?: string } = {}): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setEncoding('latin1');
    const reply = (line: string) => socket.write(`${line}\r\n`);
    let auth: string | undefined;
    let from = '';
    let to: string[] = [];
    let data: string[] | undefined;
    let loginUser: string | undefined;
    let pending: 'login-user' | 'login-pass' | undefined;
    const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    const authenticate = (user: string, pass: string) => {
      if (opts.auth !== undefined && `${user}:${pass}` === opts.auth) {
        auth = `${user}:${pass}`;
        reply('235 2.7.0 Authentication successful');
      } else reply('535 5.7.8 Authentication failed');
    };
    const line = (l: string) => {
      if (data !== undefined) {
        if (l === '.') {
          messages.push({ auth, from, to, data: data.join('\n') });
          data = undefined;
          from = '';
          to = [];
          reply('250 2.0.0 queued');
        } else data.push(l.startsWith('..') ? l.slice(1) : l);
        return;
      }
      if (pending === 'login-user') {
        loginUser = decode(l);
        pending = 'login-pass';
        reply(`334 ${Buffer.from('Password:').toString('base64')}`);
        return;
      }
      if (pending === 'login-pass') {
        pending = undefined;
        authenticate(loginUser ?? '', decode(l));
        return;
      }
      const [verb = '', ...rest] = l.split(' ');
      const arg = rest.join(' ');
      switch (verb.toUpperCase()) {
        case 'EHLO':
          reply('250-sink.test');
          if (opts.auth !== undefined) reply('250-AUTH PLAIN LOGIN');
          reply('250 8BITMIME');
          return;
        case 'HELO':
          return reply('250 sink.test');
        case 'AUTH': {
          const [mech = '', initial] = arg.split(' ');
          if (mech.toUpperCase() === 'PLAIN' && initial !== undefined) {
            const [, user = '', pass = ''] = decode(initial).split('\0');
            return authenticate(user, pass);
          }
          if (mech.toUpperCase() === 'LOGIN') {
            pending = 'login-user';
            return reply(`334 ${Buffer.from('Username:').toString('base64')}`);
          }
          return reply('504 5.5.4 mechanism not supported');
        }
        case 'MAIL':
          if (opts.auth !== undefined && auth === undefined) return reply('530 5.7.0 Authentication required');
          from = /<([^>]*)>/.exec(arg)?.[1] ?? '';
          return reply('250 2.1.0 ok');
        case 'RCPT':
          to.push(/<([^>]*)>/.exec(arg)?.[1] ?? '');
          return reply('250 2.1.5 ok');
        case 'DATA':
          data = [];
          return reply('354 go ahead');
        case 'RSET':
          from = '';
          to = [];
          return reply('250 2.0.0 ok');
        case 'QUIT':
          reply('221 2.0.0 bye');
          socket.end();
          return;
        default:
          return reply('250 2.0.0 ok');
      }
    };
    reply('220 sink.test ESMTP');
    onLines(socket, line, '\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    messages,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
