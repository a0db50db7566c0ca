// The Postfix policy door on `policy_listen`, on the connection layer (net/connection.ts):
// each request (codec.ts) is answered at once from memory by the PolicyService (types.ts)
// with one `action=` reply, in order, on a connection Postfix keeps for its next request.
// Whatever the door cannot decide answers DUNNO, never a refusal: the directory not loaded
// yet, a service that throws or returns something Postfix could not read. Malformed input
// closes that one connection (the layer counts and logs it); Postfix then applies the
// check's default_action to that one request and reconnects for the next.

import { performance } from 'node:perf_hooks';
import { errorMessage, type Logger } from '../log.js';
import type { Metrics, Result } from '../metrics.js';
import { doorHandler, type Conn, type Protocol } from '../net/connection.js';
import type { ConnectionHandler } from '../net/listener.js';
import { createPolicyDecoder, encodeAction, type PolicyRequest } from './codec.js';
import type { PolicyService } from './types.js';

export interface PolicyDoorDeps {
  service: PolicyService;
  /** False until the directory's first load: then every request is answered DUNNO. */
  loaded(): boolean;
  logger: Logger;
  metrics: Metrics;
}

const LISTENER = 'policy';
export const DUNNO = 'DUNNO';

/** The service that decides nothing: what the door answers until a real one is wired. */
export const dunnoService: PolicyService = { answer: () => DUNNO };

/** protocol_state values Postfix sends (the metric label; anything else is `other`). */
const STATES = new Set(['CONNECT', 'EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE', 'VRFY', 'ETRN']);

/** One line of printable text: what Postfix can read as an action. */
const ACTION = /^[^\r\n\0]{1,1000}$/;

function stateLabel(r: PolicyRequest): string {
  const s = r.get('protocol_state') ?? '';
  return STATES.has(s) ? s.toLowerCase() : 'other';
}

export function createPolicyHandler(deps: PolicyDoorDeps): ConnectionHandler {
  return doorHandler<PolicyRequest>({ name: LISTENER, logger: deps.logger, metrics: deps.metrics, open: (conn) => openPolicy(conn, deps) });
}

function openPolicy(conn: Conn, deps: PolicyDoorDeps): Protocol<PolicyRequest> {
  const { service, logger, metrics } = deps;

  /** The action for one request, and the metric's result: `temp` when the door could not ask. */
  const decide = (request: PolicyRequest): [string, Result] => {
    if (!deps.loaded()) return [DUNNO, 'temp'];
    let action: string;
    try {
      action = service.answer(request);
    } catch (err) {
      logger.error('policy: the service failed; answering DUNNO', { error: errorMessage(err) });
      return [DUNNO, 'temp'];
    }
    if (!ACTION.test(action)) {
      logger.error('policy: the service answered no single-line action; answering DUNNO', { action: action.slice(0, 100) });
      return [DUNNO, 'temp'];
    }
    return [action, action === DUNNO ? 'notfound' : 'ok'];
  };

  return {
    // Between requests the connection waits; a request half-received is the decoder's.
    decoder: createPolicyDecoder(),
    handle(request) {
      const started = performance.now();
      const [action, result] = decide(request);
      if (metrics.enabled) metrics.lookupDuration.observe({ protocol: 'policy', map: stateLabel(request), result }, (performance.now() - started) / 1000);
      conn.send(encodeAction(action));
    },
  };
}
