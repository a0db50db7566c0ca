// An independent DKIM verifier: dkimpy (Debian's python3-dkim, with python3-nacl for
// Ed25519 and python3-dnspython), not mailmapd's code. It looks each signature's key up
// itself, over DNS, at the server given (a test's authoritative Knot on a loopback port),
// and says for every DKIM-Signature header: selector, algorithm, pass or fail.

import { spawnSync } from 'node:child_process';

const script = `
import sys, dkim, dns.resolver
port = int(sys.argv[1])
r = dns.resolver.Resolver(configure=False)
r.nameservers = ['127.0.0.1']
r.port = port
def txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    try:
        ans = r.resolve(name, 'TXT', lifetime=timeout)
    except Exception:
        return None
    for rr in ans:
        return b''.join(rr.strings)
    return None
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
sigs = [v for (k, v) in d.headers if k.lower() == b'dkim-signature']
for i in range(len(sigs)):
    tags = dict((t.split(b'=', 1)[0].strip(), t.split(b'=', 1)[1].strip()) for t in sigs[i].split(b';') if b'=' in t)
    try:
        ok = d.verify(idx=i, dnsfunc=txt)
    except Exception as e:
        ok = False
    print('%s %s %s %s' % (tags[b'd'].decode(), tags[b's'].decode(), tags[b'a'].decode(), 'pass' if ok else 'fail'))
`;

export interface VerifiedSignature {
  domain: string;
  selector: string;
  algorithm: string;
  pass: boolean;
}

/** Verifies every DKIM signature of `message` (lines joined by LF or CRLF) against DNS at 127.0.0.1:`dnsPort`. */
export function verifyDkim(message: string, dnsPort: number): VerifiedSignature[] {
  const r = spawnSync('/usr/bin/python3', ['-c', script, String(dnsPort)], {
    input: message.replace(/\r?\n/g, '\r\n'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`dkimpy failed (${r.status}): ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [domain = '', selector = '', algorithm = '', verdict = ''] = l.split(' ');
      return { domain, selector, algorithm, pass: verdict === 'pass' };
    });
}
