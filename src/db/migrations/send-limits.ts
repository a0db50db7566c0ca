// Migration 10: sending limits (the policy service's), and what the daemons count.
//
// The limits are directory data: a mailbox's own rides along with the mailbox row; a
// domain's defaults and total reach the daemon as a routing entry `send_limits:<domain>`
// (one more key from the domains table, no new change-log kind).
//
// The counts are not directory data, and no change trigger watches them (writing them must
// never make a daemon reload): every daemon adds the recipients it counted per minute to
// `send_counts` through its write-back, and reads back what every host added (the table
// replicates to standbys like any other). `send_usage` is the panel's view: per address
// (a mailbox, or `@domain` for a domain's total) the recipients of the last hour and day as
// of `updated`. Neither has a foreign key, for the write-back's sake (writeback.ts).

/** The counts' tables: also made by `triggers install`, for a panel's database. */
export const sendCountTablesSql = `
-- minute: minutes since the Unix epoch (UTC) in which the recipients were counted.
CREATE TABLE IF NOT EXISTS mailmapd.send_counts (
  address text NOT NULL,
  minute  bigint NOT NULL,
  count   integer NOT NULL CHECK (count >= 0),
  updated timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (address, minute)
);
CREATE INDEX IF NOT EXISTS send_counts_updated ON mailmapd.send_counts (updated);

CREATE TABLE IF NOT EXISTS mailmapd.send_usage (
  address text PRIMARY KEY,
  hour    integer NOT NULL DEFAULT 0,
  day     integer NOT NULL DEFAULT 0,
  updated timestamptz NOT NULL DEFAULT now()
);
`;

export const sendLimitsSql = `
ALTER TABLE mailmapd.mailboxes
  ADD COLUMN IF NOT EXISTS send_limit_hour integer CHECK (send_limit_hour IS NULL OR send_limit_hour >= 0),
  ADD COLUMN IF NOT EXISTS send_limit_day integer CHECK (send_limit_day IS NULL OR send_limit_day >= 0);

ALTER TABLE mailmapd.domains
  ADD COLUMN IF NOT EXISTS mailbox_send_limit_hour integer CHECK (mailbox_send_limit_hour IS NULL OR mailbox_send_limit_hour >= 0),
  ADD COLUMN IF NOT EXISTS mailbox_send_limit_day integer CHECK (mailbox_send_limit_day IS NULL OR mailbox_send_limit_day >= 0),
  ADD COLUMN IF NOT EXISTS send_limit_day integer CHECK (send_limit_day IS NULL OR send_limit_day >= 0);

${sendCountTablesSql}
-- The policy service follows quota usage written by any host: by the time it changed.
CREATE INDEX IF NOT EXISTS quota_usage_updated ON mailmapd.quota_usage (updated);

SELECT mailmapd.watch_table('mailmapd.domains', 'route', $$unnest(ARRAY['domain_transport:' || r.name, 'send_limits:' || r.name])$$);
`;
