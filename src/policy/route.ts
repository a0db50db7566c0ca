// Dovecot's auth policy hook (auth_policy_server_url): `POST /?command=allow|report` with a
// JSON body {login, pwhash, remote, protocol, …; report adds success, policy_reject}.
// Answers {"status": N}: N < 0 rejects, 0 allows, N > 0 delays by N seconds.

import type { Config } from '../config.js';
import type { Route } from '../http/server.js';
import { json } from '../http/server.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { hasBearerSecret } from '../http/bearer.js';
import type { Limiter } from './limiter.js';

interface PolicyRequest {
  login: string;
  pwhash: string;
  remote: string | undefined;
  success: boolean;
  policyReject: boolean;
}

function parse(body: Buffer): PolicyRequest | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === 'string' ? x : '');
  return {
    login: str(o.login),
    pwhash: str(o.pwhash),
    remote: str(o.remote) || undefined,
    success: o.success === true,
    policyReject: o.policy_reject === true,
  };
}

export function createPolicyRoutes(deps: { limiter: Limiter; config: Config; logger: Logger; metrics: Metrics }): Map<string, Route> {
  const { limiter, config, logger, metrics } = deps;
  const route: Route = (req) => {
    const started = performance.now();
    const command = req.query.get('command');
    const done = (status: number, value: unknown, result: 'ok' | 'fail' | 'temp') => {
      metrics.lookupDuration.observe({ protocol: 'policy', map: command === 'report' ? 'report' : 'allow', result }, (performance.now() - started) / 1000);
      return json(status, value);
    };
    if (!hasBearerSecret(req, config.http_secret)) {
      metrics.badInput.inc({ listener: 'http', reason: 'unauthorized' });
      return done(401, { status: 0, msg: 'unauthorized' }, 'fail');
    }
    if (command !== 'allow' && command !== 'report') return done(400, { status: 0, msg: 'command must be allow or report' }, 'fail');
    const r = parse(req.body);
    if (!r) {
      metrics.badInput.inc({ listener: 'http', reason: 'bad_json' });
      return done(400, { status: 0, msg: 'bad JSON' }, 'fail');
    }
    if (command === 'report') {
      // A login the policy itself rejected is no new evidence; counting it would extend the ban forever.
      if (!r.policyReject) limiter.report(r.login, { remoteIp: r.remote }, r.success, r.pwhash);
      metrics.policyDecisions.inc({ command, decision: 'reported', reason: r.success ? 'success' : 'failure' });
      return done(200, { status: 0, msg: 'ok' }, 'ok');
    }
    const d = limiter.decide(r.login, r.remote);
    if (d.action === 'allow') {
      metrics.policyDecisions.inc({ command, decision: 'allowed', reason: 'none' });
      return done(200, { status: 0, msg: 'ok' }, 'ok');
    }
    if (d.action === 'delay') {
      metrics.policyDecisions.inc({ command, decision: 'delayed', reason: d.reason });
      return done(200, { status: d.seconds, msg: `too many failures from this ${d.reason}` }, 'ok');
    }
    metrics.policyDecisions.inc({ command, decision: 'rejected', reason: d.reason });
    logger.info('policy: refused', { reason: d.reason, retry_after: d.retryAfterSeconds });
    return done(200, { status: -1, msg: `too many failures from this ${d.reason}, retry after ${d.retryAfterSeconds} s` }, 'fail');
  };
  return new Map([['POST /', route]]);
}
