// The kinds of directory entry a change trigger may log (mailmapd.changes.kind), as SQL:
// checked by `mailmapd.watch_table` when a trigger is installed and by the change log's
// CHECK, both built from the directory's one list of kinds (changeKinds).

import { changeKinds } from '../directory/directory.js';

/** The list as SQL literals: `'domain', 'alias_domain', …`. */
export const loggedKindsSql = changeKinds.map((k) => `'${k}'`).join(', ');

/**
 * Replaces the change log's CHECK on kind whole, so that a database set up by an older
 * mailmapd (or a panel's, by an older `triggers install`) accepts the kinds added since.
 * Part of every migration that adds a kind, and of `triggers install`.
 */
export const changeKindsSql = `
ALTER TABLE mailmapd.changes DROP CONSTRAINT IF EXISTS changes_kind_check;
ALTER TABLE mailmapd.changes ADD CONSTRAINT changes_kind_check CHECK (kind IN (${loggedKindsSql}));
`;
