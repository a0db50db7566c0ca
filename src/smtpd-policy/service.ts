// The policy service behind the `policy_listen` door: one request's attributes in, one
// action out, from memory. Sending limits for authenticated senders (checked at RCPT,
// counted at END-OF-MESSAGE), and full mailboxes refused at RCPT. Anything it cannot decide
// is DUNNO: a refusal only ever comes from a limit or a quota it knows. The clock is
// injected; nothing here does I/O (the follower and the write-back do, beside it).

import type { QuotaGrace } from '../config.js';
import type { Directory } from '../directory/directory.js';
import type { Logger } from '../log.js';
import { senderOf, type LimitDefaults, type Sender } from './limits.js';
import type { PolicyMetrics } from './metrics.js';
import { fullMailbox, type UsageOf } from './quota.js';
import { DAY_MINUTES, HOUR_MINUTES, minuteOf, type SendCounts } from './send-counts.js';
import type { PolicyService } from './types.js';

export const DUNNO = 'DUNNO';

export interface PolicyServiceOptions {
  directory: Directory;
  counts: SendCounts;
  usage: UsageOf;
  limits: () => LimitDefaults;
  quotaGrace: () => QuotaGrace;
  logger: Logger;
  metrics: PolicyMetrics;
  now?: () => number;
  /** Messages whose recipients are tracked between RCPT and END-OF-MESSAGE at most. */
  maxMessages?: number;
}

export interface PolicyServiceHandle extends PolicyService {
  /** Drops what is older than a day (counts, alarms, abandoned messages); the owner calls it now and then. */
  prune(): void;
}

type Limit = 'hour' | 'day' | 'recipients';

/** A recipient refused for a sending limit: a deferral, never a bounce, naming the limit. */
function deferral(what: string): string {
  return `450 4.7.1 Sending limit reached: ${what}; try again later`;
}

// Long because it is one closure over the per-message table and the alarms; the steps —
// checkLimits, count, quota, alarm — are short functions inside it.
export function createPolicyService(opts: PolicyServiceOptions): PolicyServiceHandle {
  const { directory, counts, logger, metrics } = opts;
  const now = opts.now ?? Date.now;
  const maxMessages = opts.maxMessages ?? 100_000;
  /** Recipients let through so far per message (Postfix's `instance`), and the minute of its last. */
  const messages = new Map<string, { n: number; minute: number }>();
  /** `scope key\0limit` → the minute its alarm was last raised. */
  const alarms = new Map<string, number>();

  function alarm(scope: 'mailbox' | 'domain', key: string, limit: Limit, value: number, minute: number): void {
    const id = `${key}\u0000${limit}`;
    const last = alarms.get(id);
    const window = limit === 'hour' ? HOUR_MINUTES : DAY_MINUTES;
    if (last !== undefined && minute - last < window) return;
    alarms.set(id, minute);
    metrics.limitReached.inc({ scope, limit });
    logger.warn('sending limit reached', { scope, [scope]: key.replace(/^@/, ''), limit, value });
  }

  /** The deferral for the n-th recipient of a message from `s`, or undefined. */
  function checkLimits(s: Sender, n: number, minute: number): string | undefined {
    if (s.maxRecipients > 0 && n > s.maxRecipients) {
      alarm('mailbox', s.mailbox, 'recipients', s.maxRecipients, minute);
      return deferral(`at most ${s.maxRecipients} recipients per message`);
    }
    const windows: [number, number, Limit, 'mailbox' | 'domain', string][] = [
      [s.hour, HOUR_MINUTES, 'hour', 'mailbox', s.mailbox],
      [s.day, DAY_MINUTES, 'day', 'mailbox', s.mailbox],
      [s.domainDay, DAY_MINUTES, 'day', 'domain', s.domainKey],
    ];
    for (const [max, minutes, limit, scope, key] of windows) {
      if (max <= 0 || counts.sum(key, minute, minutes) + n <= max) continue;
      alarm(scope, key, limit, max, minute);
      const whose = scope === 'mailbox' ? key : `the domain ${key.slice(1)}`;
      return deferral(`${max} recipients per ${limit} for ${whose}`);
    }
    return undefined;
  }

  function quota(request: ReadonlyMap<string, string>): string | undefined {
    const recipient = request.get('recipient') ?? '';
    if (recipient === '' || recipient.lastIndexOf('@') <= 0) return undefined;
    const size = Number(request.get('size') ?? 0);
    const full = fullMailbox(directory, opts.usage, opts.quotaGrace(), recipient, Number.isSafeInteger(size) && size > 0 ? size : 0);
    // Named as the sender wrote it: an alias's mailboxes are not the sender's business.
    return full === undefined ? undefined : `552 5.2.2 <${recipient.slice(0, 256)}>: mailbox is full`;
  }

  function rcpt(request: ReadonlyMap<string, string>): string {
    const login = request.get('sasl_username') ?? '';
    const sender = login === '' ? undefined : senderOf(directory, opts.limits(), login);
    const minute = minuteOf(now());
    const instance = request.get('instance') ?? '';
    const seen = messages.get(instance);
    if (sender !== undefined) {
      const refused = checkLimits(sender, (seen?.n ?? 0) + 1, minute);
      if (refused !== undefined) return refused;
    }
    const full = quota(request);
    if (full !== undefined) return full;
    if (sender !== undefined && instance !== '') {
      if (seen !== undefined) {
        seen.n++;
        seen.minute = minute;
      } else {
        // Oldest first out: a message abandoned before DATA ends leaves its entry behind.
        if (messages.size >= maxMessages) messages.delete(messages.keys().next().value as string);
        messages.set(instance, { n: 1, minute });
      }
    }
    return DUNNO;
  }

  function endOfMessage(request: ReadonlyMap<string, string>): string {
    const count = Number(request.get('recipient_count') ?? 0);
    // One recipient: Postfix names it, and the real size is known now.
    if (count === 1) {
      const full = quota(request);
      if (full !== undefined) return full;
    }
    messages.delete(request.get('instance') ?? '');
    const login = request.get('sasl_username') ?? '';
    const sender = login === '' ? undefined : senderOf(directory, opts.limits(), login);
    if (sender !== undefined && Number.isSafeInteger(count) && count > 0) {
      const minute = minuteOf(now());
      counts.add(sender.mailbox, minute, count);
      counts.add(sender.domainKey, minute, count);
      metrics.countsPending.set(counts.pending());
    }
    return DUNNO;
  }

  function decide(request: ReadonlyMap<string, string>): [string, string] {
    if (!directory.loaded || request.get('request') !== 'smtpd_access_policy') return [DUNNO, 'dunno'];
    switch (request.get('protocol_state')) {
      case 'RCPT': {
        const a = rcpt(request);
        return [a, a === DUNNO ? 'dunno' : a.startsWith('552') ? 'quota_full' : 'send_limit'];
      }
      case 'END-OF-MESSAGE': {
        const a = endOfMessage(request);
        return [a, a === DUNNO ? 'dunno' : 'quota_full'];
      }
      default:
        return [DUNNO, 'dunno'];
    }
  }

  return {
    answer(request) {
      const [action, label] = decide(request);
      const state = request.get('protocol_state');
      metrics.answers.inc({ state: state === 'RCPT' || state === 'END-OF-MESSAGE' ? state : 'other', answer: label });
      return action;
    },
    prune() {
      const minute = minuteOf(now());
      counts.prune(minute - DAY_MINUTES);
      for (const [k, m] of alarms) if (minute - m >= DAY_MINUTES) alarms.delete(k);
      for (const [k, m] of messages) if (minute - m.minute >= HOUR_MINUTES) messages.delete(k);
    },
  };
}
