// The private protocol between `mailmapd-checkpassword` (checkpassword.c beside this file) and the
// daemon: one length-prefixed request, one length-prefixed reply. A frame is a 4-byte
// big-endian length, then that many bytes of NUL-terminated fields. NUL cannot occur in
// what Dovecot hands the program (fd 3 is itself NUL-separated), so no escaping is needed.
//
//   request: "1" mode user password service remote_ip local_ip secured [login_user]
//            login_user: set by Dovecot's master passdb (user is then the master user)
//            mode = "auth" (check the password) | "lookup" (AUTHORIZED=1: userdb/passdb lookup)
//   reply:   code then "key=value" fields
//            code = "ok" (fields user, home, uid, gid, quota_rule) | "fail" | "temp" (field reason)
//
// The C side maps codes to Dovecot's exit codes (auth 0/1/111, lookup 2/3/111).

import type { Decoder } from '../net/connection.js';

const WIRE_VERSION = '1';
/** The C program refuses replies larger than this. */
const CHECKPASSWORD_MAX_REPLY_BYTES = 65536;

export interface CheckpasswordRequest {
  mode: 'auth' | 'lookup';
  user: string;
  password: string;
  service: string;
  remoteIp: string;
  localIp: string;
  secured: boolean;
  /** Dovecot's login_user in a master passdb request; '' otherwise. */
  loginUser?: string;
}

export type CheckpasswordReply = { code: 'ok'; fields: [string, string][] } | { code: 'fail' } | { code: 'temp'; reason: string };

function frame(fields: string[]): Buffer {
  const body = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

export function encodeRequest(r: CheckpasswordRequest): Buffer {
  return frame([WIRE_VERSION, r.mode, r.user, r.password, r.service, r.remoteIp, r.localIp, r.secured ? '1' : '', r.loginUser ?? '']);
}

/** Replies never carry NUL inside a field: it would end the field on the C side. */
const clean = (s: string) => s.replace(/\0/g, '');

export function encodeReply(r: CheckpasswordReply): Buffer {
  switch (r.code) {
    case 'ok': {
      const ok = frame(['ok', ...r.fields.map(([k, v]) => `${k}=${clean(v)}`)]);
      // The C side would drop the connection on a larger frame and Dovecot would log only
      // that the helper failed; a temporary failure with a reason says what happened.
      return ok.length - 4 <= CHECKPASSWORD_MAX_REPLY_BYTES ? ok : frame(['temp', 'reason=reply too large']);
    }
    case 'fail':
      return frame(['fail']);
    case 'temp':
      return frame(['temp', `reason=${clean(r.reason)}`]);
  }
}

/** Splits a frame body into its fields; undefined unless every field is NUL-terminated. */
function fieldsOf(body: Buffer): Buffer[] | undefined {
  if (body.length === 0 || body[body.length - 1] !== 0) return undefined;
  const out: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nul = body.indexOf(0, start);
    if (nul < 0) break;
    out.push(body.subarray(start, nul));
    start = nul + 1;
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Why a connection is closed, as a bounded set (the metric label), and a sentence for the
 * log that carries no field values.
 */
export interface WireFault {
  fault: 'malformed' | 'too_large';
  reason: string;
}

const malformed = (reason: string): WireFault => ({ fault: 'malformed', reason });

/** Parses a request body, or says why it is malformed. */
export function decodeRequest(body: Buffer): CheckpasswordRequest | WireFault {
  const fields = fieldsOf(body);
  if (fields === undefined) return malformed('unterminated field');
  // 8 fields from a program older than login_user.
  if (fields.length !== 8 && fields.length !== 9) return malformed(`expected 9 fields, got ${fields.length}`);
  let text: string[];
  try {
    text = fields.map((f) => utf8.decode(f));
  } catch {
    // Decoding with replacement characters would let two different passwords look alike.
    return malformed('invalid UTF-8');
  }
  const [version, mode, user, password, service, remoteIp, localIp, secured, loginUser = ''] = text as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version !== WIRE_VERSION) return malformed(`unsupported version ${JSON.stringify(version.slice(0, 8))}`);
  if (mode !== 'auth' && mode !== 'lookup') return malformed('unknown mode');
  return { mode, user, password, service, remoteIp, localIp, secured: secured !== '', loginUser };
}

export function decodeReply(body: Buffer): CheckpasswordReply | undefined {
  const fields = fieldsOf(body)?.map((f) => f.toString('utf8'));
  if (fields === undefined || fields.length === 0) return undefined;
  const pairs = fields.slice(1).map((f): [string, string] => {
    const eq = f.indexOf('=');
    return eq < 0 ? [f, ''] : [f.slice(0, eq), f.slice(eq + 1)];
  });
  switch (fields[0]) {
    case 'ok':
      return { code: 'ok', fields: pairs };
    case 'fail':
      return { code: 'fail' };
    case 'temp':
      return { code: 'temp', reason: pairs.find(([k]) => k === 'reason')?.[1] ?? '' };
    default:
      return undefined;
  }
}

/**
 * Reassembles frames from a byte stream with a bound: `push` returns complete frame bodies,
 * or a fault once a frame announces more than `maxBytes`.
 */
export function createFrameReader(maxBytes: number): { push(chunk: Buffer): Buffer[] | WireFault; readonly pending: number } {
  let buf = Buffer.alloc(0);
  return {
    /** Bytes of an incomplete frame held. */
    get pending() {
      return buf.length;
    },
    push(chunk) {
      buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, chunk]);
      const out: Buffer[] = [];
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > maxBytes) return { fault: 'too_large', reason: `request of ${len} bytes exceeds ${maxBytes}` };
        if (buf.length < 4 + len) break;
        out.push(buf.subarray(4, 4 + len));
        buf = buf.subarray(4 + len);
      }
      if (buf.length > 4 + maxBytes) return { fault: 'too_large', reason: 'request too large' };
      return out;
    },
  };
}

/** Requests as a connection layer's Decoder: frames of at most `maxBytes`, each decoded or refused. */
export function createRequestDecoder(maxBytes: number): Decoder<CheckpasswordRequest> {
  const reader = createFrameReader(maxBytes);
  return {
    push(chunk, end, take) {
      const frames = reader.push(chunk.subarray(0, end));
      if (!Array.isArray(frames)) return { fault: frames.fault, detail: frames.reason };
      for (const body of frames) {
        const req = decodeRequest(body);
        if ('fault' in req) return { fault: req.fault, detail: req.reason };
        take(req);
      }
      return undefined;
    },
    get idle() {
      return reader.pending === 0;
    },
  };
}
