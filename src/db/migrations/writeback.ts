// What the daemon writes back: the last successful login of each mailbox and the quota
// usage Dovecot's quota-clone plugin reports. Neither table is watched (no change
// trigger): writing them must never make a daemon reload anything. Rows are keyed by the
// canonical mailbox address but carry no foreign key, so that a mailbox removed while its
// last values were still on their way does not fail the whole batch.

export const writebackTablesSql = `
CREATE TABLE IF NOT EXISTS mailmapd.last_logins (
  address   text PRIMARY KEY,
  at        timestamptz NOT NULL,
  service   text NOT NULL,
  remote_ip inet
);

CREATE TABLE IF NOT EXISTS mailmapd.quota_usage (
  address  text PRIMARY KEY,
  bytes    bigint,
  messages bigint,
  updated  timestamptz NOT NULL
);
`;
