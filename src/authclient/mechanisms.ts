// SASL PLAIN and LOGIN as small state machines over decoded bytes: each step either asks the
// client for more (a base64 challenge), yields the credentials to check, or fails. Pure: the
// server decides what a failure costs and who checks the password.

export type MechStep =
  | { kind: 'continue'; challenge: string }
  /** `bearer`: the password is an OAuth2 bearer token (OAUTHBEARER, XOAUTH2). */
  | { kind: 'credentials'; login: string; password: string; bearer?: true }
  /** `login` is set when the client already named itself (for FAIL user=). */
  | { kind: 'fail'; reason: string; login?: string };

export interface Mechanism {
  /** `initial` is undefined when the client sent no initial response. */
  start(initial: Buffer | undefined): MechStep;
  next(data: Buffer): MechStep;
  /**
   * What to send when the credentials were refused, before the final FAIL: RFC 7628 §3.2.2
   * has the server send an error status as a challenge and the client answer it with a dummy.
   */
  refused?(): MechStep;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Bytes to text, refusing invalid UTF-8: decoding with replacement characters would let two
 * different byte strings become the same password.
 */
function text(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** RFC 4616: `authzid NUL authcid NUL passwd`. */
function plainCredentials(data: Buffer): MechStep {
  const first = data.indexOf(0);
  const second = first < 0 ? -1 : data.indexOf(0, first + 1);
  if (first < 0 || second < 0 || data.indexOf(0, second + 1) >= 0) return { kind: 'fail', reason: 'invalid input' };
  const authzid = text(data.subarray(0, first));
  const authcid = text(data.subarray(first + 1, second));
  const password = text(data.subarray(second + 1));
  if (authzid === undefined || authcid === undefined || authcid === '') return { kind: 'fail', reason: 'invalid input' };
  if (password === undefined) return { kind: 'fail', reason: 'invalid input', login: authcid };
  // A different authzid means "log in as someone else" (Dovecot's master users): never here.
  if (authzid !== '' && authzid.toLowerCase() !== authcid.toLowerCase()) {
    return { kind: 'fail', reason: 'authorization identity not allowed', login: authcid };
  }
  return { kind: 'credentials', login: authcid, password };
}

function plainMechanism(): Mechanism {
  return {
    start: (initial) => (initial === undefined ? { kind: 'continue', challenge: '' } : plainCredentials(initial)),
    next: plainCredentials,
  };
}

const usernamePrompt = Buffer.from('Username:').toString('base64');
const passwordPrompt = Buffer.from('Password:').toString('base64');

/** The obsolete but ubiquitous LOGIN: a username prompt, then a password prompt. */
function loginMechanism(): Mechanism {
  let login: string | undefined;
  const username = (data: Buffer): MechStep => {
    const name = data.includes(0) ? undefined : text(data);
    if (name === undefined || name === '') return { kind: 'fail', reason: 'invalid input' };
    login = name;
    return { kind: 'continue', challenge: passwordPrompt };
  };
  return {
    // Like Dovecot, an initial response is the username; an empty one is no username yet.
    start: (initial) => (initial === undefined || initial.length === 0 ? { kind: 'continue', challenge: usernamePrompt } : username(initial)),
    next(data) {
      if (login === undefined) return username(data);
      const password = data.includes(0) ? undefined : text(data);
      if (password === undefined) return { kind: 'fail', reason: 'invalid input', login };
      return { kind: 'credentials', login, password };
    },
  };
}

/** RFC 5801's saslname: `=2C` is a comma, `=3D` an equals sign, and no other `=` may stand. */
function saslName(s: string): string | undefined {
  if (/=(?!2C|3D)/.test(s)) return undefined;
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** `key=value` pairs separated by ^A, ending in ^A^A: the body of OAUTHBEARER and XOAUTH2. */
function kvPairs(s: string): Map<string, string> | undefined {
  if (!s.endsWith('\x01\x01')) return undefined;
  const out = new Map<string, string>();
  for (const part of s.slice(0, -2).split('\x01')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    out.set(part.slice(0, eq).toLowerCase(), part.slice(eq + 1));
  }
  return out;
}

/** `Bearer <token>`, the scheme case-insensitive (RFC 6750 §2.1). */
function bearerToken(auth: string | undefined): string | undefined {
  const m = auth === undefined ? null : /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(auth);
  return m?.[1];
}

const invalidToken = (): MechStep => ({ kind: 'fail', reason: 'invalid token' });

/**
 * The bearer mechanisms: one message with the token, then — when the token is refused — the
 * error status as a challenge, the client's dummy response, and the failure.
 */
function bearerMechanism(parse: (data: string) => { login: string; token: string } | undefined, status: string): () => Mechanism {
  return () => {
    let refused = false;
    const first = (data: Buffer): MechStep => {
      const decoded = text(data);
      const got = decoded === undefined ? undefined : parse(decoded);
      if (got === undefined) return invalidToken();
      return { kind: 'credentials', login: got.login, password: got.token, bearer: true };
    };
    return {
      start: (initial) => (initial === undefined ? { kind: 'continue', challenge: '' } : first(initial)),
      next: (data) => (refused ? { kind: 'fail', reason: 'invalid token' } : first(data)),
      refused() {
        refused = true;
        return { kind: 'continue', challenge: Buffer.from(status).toString('base64') };
      },
    };
  };
}

/** RFC 7628: `n,a=user,^Aauth=Bearer TOKEN^A^A` (a gs2 header without channel binding). */
function parseOauthbearer(s: string): { login: string; token: string } | undefined {
  const m = /^([ny]),(?:a=([^,]*))?,/.exec(s);
  if (m === null) return undefined;
  const login = m[2] === undefined ? '' : saslName(m[2]);
  const token = bearerToken(kvPairs(s.slice(m[0].length))?.get('auth'));
  if (login === undefined || token === undefined) return undefined;
  return { login, token };
}

/** Google's XOAUTH2: `user=USER^Aauth=Bearer TOKEN^A^A`. */
function parseXoauth2(s: string): { login: string; token: string } | undefined {
  const kv = kvPairs(s);
  const token = bearerToken(kv?.get('auth'));
  if (kv === undefined || token === undefined) return undefined;
  return { login: kv.get('user') ?? '', token };
}

export const mechanisms: Readonly<Record<string, () => Mechanism>> = {
  PLAIN: plainMechanism,
  LOGIN: loginMechanism,
};

/** Offered on the auth socket only when `oauth2_issuer` is set. */
export const bearerMechanisms: Readonly<Record<string, () => Mechanism>> = {
  OAUTHBEARER: bearerMechanism(parseOauthbearer, '{"status":"invalid_token","schemes":"bearer"}'),
  XOAUTH2: bearerMechanism(parseXoauth2, '{"status":"401","schemes":"bearer"}'),
};
