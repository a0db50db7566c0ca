// SASL PLAIN and LOGIN as small state machines over decoded bytes: each step either asks the
// client for more (a base64 challenge), yields the credentials to check, or fails. Pure: the
// server decides what a failure costs and who checks the password.

export type MechStep =
  | { kind: 'continue'; challenge: string }
  | { kind: 'credentials'; login: string; password: string }
  /** `login` is set when the client already named itself (for FAIL user=). */
  | { kind: 'fail'; reason: string; login?: string };

export interface Mechanism {
  /** `initial` is undefined when the client sent no initial response. */
  start(initial: Buffer | undefined): MechStep;
  next(data: Buffer): MechStep;
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

export const mechanisms: Readonly<Record<string, () => Mechanism>> = {
  PLAIN: plainMechanism,
  LOGIN: loginMechanism,
};
