// The kinds of directory entry a change trigger may log (mailmapd.changes.kind): checked by
// `mailmapd.watch_table` when a trigger is installed and by the change log's CHECK, both
// built from this one list. A kind added here needs its query in every profile
// (src/sync/profile.ts).

const loggedKinds = ['domain', 'alias_domain', 'mailbox', 'alias', 'master_user', 'route'] as const;

/** The list as SQL literals: `'domain', 'alias_domain', …`. */
export const loggedKindsSql = loggedKinds.map((k) => `'${k}'`).join(', ');

/**
 * Replaces the change log's CHECK on kind whole, so that a database set up by an older
 * mailmapd (or a panel's, by an older `triggers install`) accepts the kinds added since.
 * Part of every migration that adds a kind, and of `triggers install`.
 */
export const changeKindsSql = `
ALTER TABLE mailmapd.changes DROP CONSTRAINT IF EXISTS changes_kind_check;
ALTER TABLE mailmapd.changes ADD CONSTRAINT changes_kind_check CHECK (kind IN (${loggedKindsSql}));
`;
