// The Dovecot auth-client protocol as lines in, messages out, and messages in, lines out:
// no sockets here. Lines and their tab-escaping are the Dovecot tab-line codec's
// (net/tab-line.ts), as Dovecot 2.3 and Postfix 3.7 send them.

import { tabEscape, tabUnescape } from '../net/tab-line.js';

export type ClientMessage =
  | { kind: 'version'; major: number; minor: number }
  | { kind: 'cpid'; pid: number }
  | { kind: 'auth'; id: number; mech: string; params: AuthParams }
  | { kind: 'cont'; id: number; data: string }
  | { kind: 'cancel'; id: number }
  /** A line the server must answer by disconnecting; `reason` is safe to log. */
  | { kind: 'invalid'; fault: AuthClientFault; reason: string };

/**
 * Why a connection is closed, as a bounded set: the metric label. The human sentence beside
 * it (`reason`) is for the log and may be reworded freely.
 */
export type AuthClientFault =
  | 'malformed'
  | 'unknown_command'
  | 'line_too_long'
  | 'out_of_order'
  | 'incompatible_version'
  | 'duplicate_id'
  | 'too_many_requests'
  | 'unsupported_mechanism';

const invalid = (reason: string): ClientMessage => ({ kind: 'invalid', fault: 'malformed', reason });

export interface AuthParams {
  service: string;
  lip?: string;
  rip?: string;
  secured: boolean;
  noPenalty: boolean;
  /** The base64 initial response as sent; undefined when absent. Empty string = empty response. */
  resp?: string;
}

/** Request ids are unsigned 32-bit and never 0 (Dovecot's rule). */
function parseId(text: string | undefined): number | undefined {
  if (text === undefined || !/^[0-9]{1,10}$/.test(text)) return undefined;
  const id = Number(text);
  return id > 0 && id <= 0xffffffff ? id : undefined;
}

/**
 * Parses the parameters after `AUTH <id> <mech>`. `resp=` must be last; an empty `resp=`
 * means "no initial response" for clients older than 1.2 (Postfix speaks 1.0), and an empty
 * response for 1.2 clients; `resp==` is always an empty response.
 */
function parseAuthParams(fields: string[], clientMinor: number): AuthParams | string {
  const out: AuthParams = { service: '', secured: false, noPenalty: false };
  let haveService = false;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const eq = f.indexOf('=');
    const name = eq < 0 ? f : f.slice(0, eq);
    const value = eq < 0 ? '' : tabUnescape(f.slice(eq + 1));
    switch (name) {
      case 'service':
        out.service = value;
        haveService = value !== '';
        break;
      case 'lip':
        out.lip = value;
        break;
      case 'rip':
        out.rip = value;
        break;
      case 'secured':
        out.secured = true;
        break;
      case 'no-penalty':
        out.noPenalty = true;
        break;
      case 'resp':
        if (i !== fields.length - 1) return 'parameters after resp=';
        if (value === '=') out.resp = '';
        else if (value !== '' || clientMinor >= 2) out.resp = value;
        break;
      default:
        break; // unknown parameters (nologin, session, real_rip, debug…) are ignored, as by Dovecot
    }
  }
  if (!haveService) return 'AUTH without service=';
  return out;
}

/** Parses one line (without its LF) sent by a client that announced minor version `clientMinor`. */
export function parseClientLine(line: string, clientMinor: number): ClientMessage {
  const fields = line.split('\t');
  const cmd = fields[0];
  switch (cmd) {
    case 'VERSION': {
      if (fields.length < 3 || !/^\d{1,5}$/.test(fields[1]!) || !/^\d{1,5}$/.test(fields[2]!)) {
        return invalid('malformed VERSION');
      }
      return { kind: 'version', major: Number(fields[1]), minor: Number(fields[2]) };
    }
    case 'CPID': {
      if (fields.length < 2 || !/^\d{1,10}$/.test(fields[1]!)) return invalid('malformed CPID');
      return { kind: 'cpid', pid: Number(fields[1]) };
    }
    case 'AUTH': {
      const id = parseId(fields[1]);
      const mech = fields[2];
      if (id === undefined || mech === undefined || mech === '') return invalid('malformed AUTH');
      const params = parseAuthParams(fields.slice(3), clientMinor);
      if (typeof params === 'string') return invalid(params);
      return { kind: 'auth', id, mech: mech.toUpperCase(), params };
    }
    case 'CONT': {
      const id = parseId(fields[1]);
      if (id === undefined || fields.length !== 3) return invalid('malformed CONT');
      return { kind: 'cont', id, data: fields[2]! };
    }
    case 'CANCEL': {
      const id = parseId(fields[1]);
      if (id === undefined) return invalid('malformed CANCEL');
      return { kind: 'cancel', id };
    }
    default:
      return { kind: 'invalid', fault: 'unknown_command', reason: 'unknown command' };
  }
}

export type ServerReply =
  | { kind: 'cont'; id: number; data: string }
  | { kind: 'ok'; id: number; user: string }
  | { kind: 'fail'; id: number; user?: string; code?: 'temp_fail' | 'invalid_base64' | 'authz_fail'; reason?: string };

export function serializeReply(r: ServerReply): string {
  switch (r.kind) {
    case 'cont':
      return `CONT\t${r.id}\t${r.data}\n`;
    case 'ok':
      return `OK\t${r.id}\tuser=${tabEscape(r.user)}\n`;
    case 'fail': {
      let line = `FAIL\t${r.id}`;
      if (r.user !== undefined) line += `\tuser=${tabEscape(r.user)}`;
      // `temp` is the 2.2-era flag; 2.3 clients read code=temp_fail. Sending both costs nothing.
      if (r.code === 'temp_fail') line += '\tcode=temp_fail\ttemp';
      else if (r.code !== undefined) line += `\tcode=${r.code}`;
      if (r.reason !== undefined) line += `\treason=${tabEscape(r.reason)}`;
      return line + '\n';
    }
  }
}

export interface Handshake {
  pid: number;
  cuid: number;
  cookie: string;
  mechanisms: readonly string[];
}

/** The server's greeting. MECH lines come before SPID: Postfix takes SPID-before-MECH as "wrong socket". */
export function serializeHandshake(h: Handshake): string {
  let out = 'VERSION\t1\t2\n';
  for (const m of h.mechanisms) out += `MECH\t${m}\tplaintext\n`;
  return out + `SPID\t${h.pid}\nCUID\t${h.cuid}\nCOOKIE\t${h.cookie}\nDONE\n`;
}

const strictBase64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes canonical, padded base64; undefined for anything else (Node's decoder would guess). */
export function decodeBase64(text: string): Buffer | undefined {
  return strictBase64.test(text) ? Buffer.from(text, 'base64') : undefined;
}
