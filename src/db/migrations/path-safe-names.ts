// Names that become directory names must not climb out of them: Dovecot builds a
// mailbox's home from its domain and local part (mail_home = /var/vmail/%d/%n), so a
// local part `../other/x` or a domain `..` would put mail inside another mailbox or
// outside the mail store. The CHECKs are added NOT VALID, so that an upgrade never fails
// on rows written before them; each is validated at once when no row breaks it, and
// `mailmapd check` lists the rows that do (the daemon refuses such a home meanwhile).

const unsafe = `'^\\.|\\.\\.|/'`; // a leading dot (".", ".."), "..", or "/"

interface NameRule {
  table: string;
  constraint: string;
  /** The part of the row that becomes a directory name. */
  part: string;
  /** What to show for an offending row. */
  show: string;
}

const nameRules: readonly NameRule[] = [
  { table: 'mailmapd.domains', constraint: 'domains_name_path_safe', part: 'name', show: 'name' },
  { table: 'mailmapd.alias_domains', constraint: 'alias_domains_name_path_safe', part: 'name', show: 'name' },
  { table: 'mailmapd.mailboxes', constraint: 'mailboxes_local_part_path_safe', part: `split_part(address, '@', 1)`, show: 'address' },
];

export const pathSafeNamesSql = nameRules
  .map(
    (r) => `
ALTER TABLE ${r.table} ADD CONSTRAINT ${r.constraint} CHECK (${r.part} !~ ${unsafe}) NOT VALID;
DO $do$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM ${r.table} WHERE ${r.part} ~ ${unsafe}) THEN
    ALTER TABLE ${r.table} VALIDATE CONSTRAINT ${r.constraint};
  END IF;
END $do$;`,
  )
  .join('\n');

/** Queries giving the rows that break a rule whose CHECK is still NOT VALID (for `mailmapd check`). */
export const unsafeNameQueries = nameRules.map((r) => ({
  table: r.table,
  sql: `SELECT ${r.show} AS name FROM ${r.table}
         WHERE EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '${r.table}'::regclass AND conname = '${r.constraint}' AND NOT convalidated)
           AND ${r.part} ~ ${unsafe} ORDER BY 1 LIMIT 20`,
}));
