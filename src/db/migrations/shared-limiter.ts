// Migration 13: the brute-force limiter's counts, shared by every host (as send_counts
// shares the sending counts, migration 12). Every daemon adds the failures it counted per
// login (and per login and known source) and ten-second bucket through its write-back, and
// the addresses where a login succeeded; every daemon reads back what the others added
// (the tables replicate to standbys like any other). Not directory data: no change trigger
// watches them, and writing them never makes a daemon reload.
//
// `login` is the limiter's key: `l:` and the mailbox a login resolves to, or `m:` and a
// master user's name (a digest `#…` past 128 characters). No password, hash or anything
// computed from one is stored: the limiter's "same wrong password retried" stays local.
// The tables belong to the role that migrates, as send_counts does: the daemon's own,
// which owns the schema (README: a role that owns the `mailmapd` schema).

export const sharedLimiterSql = `
-- at: the bucket's first second since the Unix epoch (UTC), a multiple of 10.
-- source: '' for the login's failures from anywhere; an address where the login
-- succeeded recently for its failures from there.
CREATE TABLE IF NOT EXISTS mailmapd.login_failures (
  login   text NOT NULL,
  source  text NOT NULL DEFAULT '',
  at      bigint NOT NULL,
  count   integer NOT NULL CHECK (count >= 0),
  updated timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (login, source, at)
);
CREATE INDEX IF NOT EXISTS login_failures_updated ON mailmapd.login_failures (updated);

-- A login's known sources: where it last succeeded, and when.
CREATE TABLE IF NOT EXISTS mailmapd.login_sources (
  login   text NOT NULL,
  source  text NOT NULL,
  seen    timestamptz NOT NULL,
  updated timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (login, source)
);
CREATE INDEX IF NOT EXISTS login_sources_updated ON mailmapd.login_sources (updated);
`;
