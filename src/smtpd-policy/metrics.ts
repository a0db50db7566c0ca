// The policy service's metrics, registered on the daemon's registry. Labels are bounded
// sets (the protocol state, the answer, which limit, mailbox or domain); never an address.

import { Counter, Gauge, type Registry } from 'prom-client';

export interface PolicyMetrics {
  answers: Counter<'state' | 'answer'>;
  limitReached: Counter<'scope' | 'limit'>;
  usageFollowed: Gauge;
  countsPending: Gauge;
}

export function createPolicyMetrics(registry: Registry): PolicyMetrics {
  const registers = [registry];
  return {
    answers: new Counter({
      name: 'mailmapd_smtpd_policy_answers_total',
      help: 'Postfix policy requests answered, by protocol state and answer (dunno, send_limit, quota_full)',
      labelNames: ['state', 'answer'],
      registers,
    }),
    limitReached: new Counter({
      name: 'mailmapd_send_limit_reached_total',
      help: 'Times a mailbox or a domain first hit a sending limit (hour, day, recipients) within its window: the alarm',
      labelNames: ['scope', 'limit'],
      registers,
    }),
    usageFollowed: new Gauge({ name: 'mailmapd_quota_usage_known', help: 'Mailboxes whose quota usage the policy service knows', registers }),
    countsPending: new Gauge({ name: 'mailmapd_send_counts_pending', help: 'Minutes of send counts waiting to be written to the primary', registers }),
  };
}
