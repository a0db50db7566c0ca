-- A custom schema profile for mailmapd: your own queries, like Postfix's pgsql:*.cf files.
-- Use it with `schema = custom:/etc/mailmapd/schema.sql` in mailmapd.conf, then run
--   mailmapd check               (do the queries run, with the right columns and types?)
--   mailmapd triggers install    (change triggers on the watched tables)
--
-- This example reads Modoboa >= 1.0, whose user table is core_user (the built-in
-- `modoboa` profile follows the older admin_user layout) and whose aliases may expire.
--
-- The format
-- * A section starts with a comment line holding only its name and a colon, e.g. the
--   line "-- domains" followed by a colon. Sections: domains, alias_domains, mailboxes,
--   aliases, routes. domains and mailboxes are required; a missing alias_domains, aliases
--   or routes section means "none".
-- * Each section holds one SELECT, whose columns must come in exactly this order (the
--   names matter too; extra columns after them are ignored):
--     domains:        name text, active boolean
--     alias_domains:  name text, target text, active boolean
--     mailboxes:      address text, password text, quota_bytes integer, active boolean
--     aliases:        address text, destination text, active boolean  (one destination per row)
--     routes:         key text, value text  (optional; among them send-as grants and copies:
--                     `send_as:<address or @domain>` -> a mailbox that may send as it, one
--                     row per grant; `sender_bcc:<address or @domain>` and
--                     `recipient_bcc:<address or @domain>` -> the address that gets a copy)
--   mailboxes may go on, in this order: disabled_services text[], maintenance boolean,
--   app_passwords json, send_limit_hour integer, send_limit_day integer (the mailbox's own
--   sending limits, NULL: its domain's); a routes section may give a domain's sending limits
--   as key 'send_limits:' || domain, value 'HOUR,DAY,TOTAL' (each part empty for none).
--   Passwords are `{SCHEME}hash` or a bare crypt string; quota_bytes 0 = no limit;
--   an alias address `@domain` is a catch-all. Lower-case the first column (the key):
--   mailmapd re-reads changed entries with WHERE <key> = ANY(<changed keys>).
-- * "-- watch TABLE KIND KEY_EXPRESSION" lines (anywhere, on one line each) name the tables
--   whose changes must reach the daemon. KIND is a section name. The key expression is
--   evaluated for each changed row, which is called r, and must give the lower-cased key
--   of that KIND's query, exactly as the query's first column would:
--     - a column of the row:  lower(r.email)
--     - a join:               lower(r.address || '@' || (SELECT d.name FROM {{admin_domain}} d WHERE d.id = r.domain_id))
--     - many keys, or none:   unnest(ARRAY(SELECT ... WHERE mb.domain_id = r.id))
--     - NULL:                 "reload everything" (always correct, but costs a full load)
--   The trigger runs with an empty search_path: write other tables as {{table}}, and
--   `triggers install` replaces them with their schema-qualified names.
--   The expression runs inside the admin panel's own writes: a scalar subquery must
--   return at most one row (look up by primary key), or the panel's write fails.
--   Every table a query reads needs a watch for that kind; `mailmapd check` says which
--   one is missing.
-- * Other comments and blank lines are ignored. A trailing semicolon is optional.

-- domains:
SELECT lower(name) AS name, enabled AS active
  FROM admin_domain
 WHERE type = 'domain';

-- alias_domains:
SELECT lower(da.name) AS name, lower(d.name) AS target, da.enabled AS active
  FROM admin_domainalias da
  JOIN admin_domain d ON d.id = da.target_id;

-- mailboxes:
SELECT lower(mb.address || '@' || d.name) AS address,
       u.password,
       mb.quota::bigint * 1048576 AS quota_bytes,
       u.is_active AS active
  FROM admin_mailbox mb
  JOIN admin_domain d ON d.id = mb.domain_id
  JOIN core_user u ON u.id = mb.user_id;

-- aliases:
-- No "expire_at > now()" here: an answer that changes with the clock, not with a write,
-- is never re-read. Expire aliases with a write (enabled = false) the triggers see.
SELECT lower(al.address) AS address, lower(alr.address) AS destination, al.enabled AS active
  FROM admin_alias al
  JOIN modoboa_admin_aliasrecipient alr ON alr.alias_id = al.id;

-- watch admin_domain domains lower(r.name)
-- watch admin_domainalias alias_domains lower(r.name)
-- watch admin_domain alias_domains unnest(ARRAY(SELECT lower(da.name) FROM {{admin_domainalias}} da WHERE da.target_id = r.id))
-- watch admin_mailbox mailboxes lower(r.address || '@' || (SELECT d.name FROM {{admin_domain}} d WHERE d.id = r.domain_id))
-- watch core_user mailboxes unnest(ARRAY(SELECT lower(mb.address || '@' || d.name) FROM {{admin_mailbox}} mb JOIN {{admin_domain}} d ON d.id = mb.domain_id WHERE mb.user_id = r.id))
-- watch admin_domain mailboxes unnest(ARRAY(SELECT lower(mb.address || '@' || r.name) FROM {{admin_mailbox}} mb WHERE mb.domain_id = r.id))
-- watch admin_alias aliases lower(r.address)
-- watch modoboa_admin_aliasrecipient aliases lower((SELECT al.address FROM {{admin_alias}} al WHERE al.id = r.alias_id))

-- routes:
-- The "sender addresses" Modoboa lets a mailbox use (admin_senderaddress): send-as grants.
-- Leave this section out if your Modoboa has no such table.
SELECT 'send_as:' || lower(sa.address) AS key, lower(mb.address || '@' || d.name) AS value
  FROM admin_senderaddress sa
  JOIN admin_mailbox mb ON mb.id = sa.mailbox_id
  JOIN admin_domain d ON d.id = mb.domain_id;

-- watch admin_senderaddress routes 'send_as:' || lower(r.address)
-- watch admin_mailbox routes unnest(ARRAY(SELECT 'send_as:' || lower(sa.address) FROM {{admin_senderaddress}} sa WHERE sa.mailbox_id = r.id))
-- watch admin_domain routes unnest(ARRAY(SELECT 'send_as:' || lower(sa.address) FROM {{admin_senderaddress}} sa JOIN {{admin_mailbox}} mb ON mb.id = sa.mailbox_id WHERE mb.domain_id = r.id))
