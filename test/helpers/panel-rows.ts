// Rows as Modoboa writes them (its models' save() and signal handlers, modoboa/admin/handlers.py),
// as SQL for the fixtures in test/fixtures/panels/: every column the ORM fills, the
// internal aliases it makes per mailbox (`a@d → a@d`, enabled with its user) and per domain
// alias (`@alias → @target`), and the admin_quota row of each mailbox.

import { readFileSync } from 'node:fs';

export const sq = (s: string | null) => (s === null ? 'NULL' : `'${s.replaceAll("'", "''")}'`);

/** A panel's DDL from test/fixtures/panels/. */
export const panelDdl = (name: string) => readFileSync(new URL(`../fixtures/panels/${name}.sql`, import.meta.url), 'utf8');

const now = `'2026-01-01 00:00:00+00'`;

export const modoboa2 = {
  domain: (id: number, name: string, o: { enabled?: boolean; type?: string; messageLimit?: number; transportId?: number } = {}) =>
    `INSERT INTO admin_domain (id, name, quota, default_mailbox_quota, message_limit, enabled, type, enable_dns_checks, transport_id,
       enable_dkim, dkim_key_selector, dkim_public_key, dkim_private_key_path, creation, last_modification)
     VALUES (${id}, ${sq(name)}, 0, 0, ${o.messageLimit ?? 'NULL'}, ${o.enabled ?? true}, ${sq(o.type ?? 'domain')}, true, ${o.transportId ?? 'NULL'},
       false, 'modoboa', '', '', ${now}, ${now});`,
  transport: (id: number, pattern: string, service: string, nextHop: string) =>
    `INSERT INTO transport_transport (id, pattern, service, next_hop, _settings) VALUES (${id}, ${sq(pattern)}, ${sq(service)}, ${sq(nextHop)}, '{}');`,
  /** A domain alias and the internal `@alias → @target` alias Modoboa adds with it. */
  domainAlias: (id: number, name: string, target: { id: number; name: string }, enabled = true) =>
    `INSERT INTO admin_domainalias (id, name, target_id, enabled, creation, last_modification) VALUES (${id}, ${sq(name)}, ${target.id}, ${enabled}, ${now}, ${now});
     WITH al AS (INSERT INTO admin_alias (address, domain_id, enabled, internal, description, creation, last_modification)
       VALUES (${sq(`@${name}`)}, NULL, true, true, '', ${now}, ${now}) RETURNING id)
     INSERT INTO modoboa_admin_aliasrecipient (address, alias_id) SELECT ${sq(`@${target.name}`)}, id FROM al;`,
  /** A user with its mailbox, its internal self alias and its quota row. */
  mailbox: (
    id: number,
    local: string,
    domain: { id: number; name: string },
    password: string,
    o: { active?: boolean; quotaMb?: number; sendOnly?: boolean; messageLimit?: number } = {},
  ) => {
    const address = `${local}@${domain.name}`;
    const active = o.active ?? true;
    return `INSERT INTO core_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined,
         is_local, master_user, language, _parameters, totp_enabled, webauthn_enabled)
       VALUES (${id}, ${sq(password)}, false, ${sq(address)}, '', '', ${sq(address)}, false, ${active}, ${now}, true, false, 'en', '{}', false, false);
     INSERT INTO admin_mailbox (id, address, quota, use_domain_quota, message_limit, domain_id, user_id, is_send_only, creation, last_modification)
       VALUES (${id}, ${sq(local)}, ${o.quotaMb ?? 0}, false, ${o.messageLimit ?? 'NULL'}, ${domain.id}, ${id}, ${o.sendOnly ?? false}, ${now}, ${now});
     INSERT INTO admin_quota (username) VALUES (${sq(address)});
     WITH al AS (INSERT INTO admin_alias (address, domain_id, enabled, internal, description, creation, last_modification)
       VALUES (${sq(address)}, ${domain.id}, ${active}, true, '', ${now}, ${now}) RETURNING id)
     INSERT INTO modoboa_admin_aliasrecipient (address, alias_id, r_mailbox_id) SELECT ${sq(address)}, id, ${id} FROM al;`;
  },
  /** A user alias: recipients are a mailbox id or an outside address. */
  alias: (
    id: number,
    address: string,
    domainId: number | null,
    recipients: Array<{ address: string; mailbox?: number }>,
    o: { enabled?: boolean; expireAt?: string } = {},
  ) =>
    `INSERT INTO admin_alias (id, address, domain_id, enabled, internal, description, expire_at, creation, last_modification)
       VALUES (${id}, ${sq(address)}, ${domainId ?? 'NULL'}, ${o.enabled ?? true}, false, '', ${o.expireAt === undefined ? 'NULL' : sq(o.expireAt)}, ${now}, ${now});
     ${recipients.map((r) => `INSERT INTO modoboa_admin_aliasrecipient (address, alias_id, r_mailbox_id) VALUES (${sq(r.address)}, ${id}, ${r.mailbox ?? 'NULL'});`).join('\n')}`,
  operation: (mailboxId: number, type: 'rename' | 'delete') =>
    `INSERT INTO admin_mailboxoperation (mailbox_id, type, argument) VALUES (${mailboxId}, '${type}', 'x');`,
  /** After explicit ids: the identity columns continue past them. */
  restart: `SELECT setval(pg_get_serial_sequence(t, 'id'), 1000) FROM unnest(ARRAY['admin_domain', 'admin_domainalias', 'core_user', 'admin_mailbox', 'admin_alias', 'modoboa_admin_aliasrecipient', 'transport_transport']) t;`,
};

export const modoboa10 = {
  domain: (id: number, name: string, enabled = true) =>
    `INSERT INTO admin_objectdates (creation, last_modification) VALUES (${now}, ${now});
     INSERT INTO admin_domain (id, name, quota, enabled, dates_id) VALUES (${id}, ${sq(name)}, 0, ${enabled}, currval('admin_objectdates_id_seq'));`,
  domainAlias: (id: number, name: string, targetId: number, enabled = true) =>
    `INSERT INTO admin_objectdates (creation, last_modification) VALUES (${now}, ${now});
     INSERT INTO admin_domainalias (id, name, target_id, enabled, dates_id) VALUES (${id}, ${sq(name)}, ${targetId}, ${enabled}, currval('admin_objectdates_id_seq'));`,
  mailbox: (id: number, local: string, domain: { id: number; name: string }, password: string, o: { active?: boolean; quotaMb?: number } = {}) => {
    const address = `${local}@${domain.name}`;
    return `INSERT INTO admin_user (id, password, last_login, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined, is_local)
       VALUES (${id}, ${sq(password)}, ${now}, false, ${sq(address)}, '', '', ${sq(address)}, false, ${o.active ?? true}, ${now}, true);
     INSERT INTO admin_objectdates (creation, last_modification) VALUES (${now}, ${now});
     INSERT INTO admin_mailbox (id, address, quota, use_domain_quota, domain_id, user_id, dates_id)
       VALUES (${id}, ${sq(local)}, ${o.quotaMb ?? 0}, false, ${domain.id}, ${id}, currval('admin_objectdates_id_seq'));
     INSERT INTO admin_quota (username, mbox_id) VALUES (${sq(address)}, ${id});`;
  },
  /** `local` is the alias's local part ('*': catch-all); targets: mailbox ids, alias ids, outside addresses. */
  alias: (id: number, local: string, domainId: number, t: { mailboxes?: number[]; aliases?: number[]; external?: string[]; enabled?: boolean }) =>
    `INSERT INTO admin_objectdates (creation, last_modification) VALUES (${now}, ${now});
     INSERT INTO admin_alias (id, address, domain_id, extmboxes, enabled, dates_id)
       VALUES (${id}, ${sq(local)}, ${domainId}, ${sq((t.external ?? []).join(','))}, ${t.enabled ?? true}, currval('admin_objectdates_id_seq'));
     ${(t.mailboxes ?? []).map((m) => `INSERT INTO admin_alias_mboxes (alias_id, mailbox_id) VALUES (${id}, ${m});`).join('\n')}
     ${(t.aliases ?? []).map((a) => `INSERT INTO admin_alias_aliases (from_alias_id, to_alias_id) VALUES (${id}, ${a});`).join('\n')}`,
  operation: (mailboxId: number) => `INSERT INTO admin_mailboxoperation (mailbox_id, type, argument) VALUES (${mailboxId}, 'rename', 'x');`,
  restart: `SELECT setval(pg_get_serial_sequence(t, 'id'), 1000) FROM unnest(ARRAY['admin_domain', 'admin_domainalias', 'admin_user', 'admin_mailbox', 'admin_alias']) t;`,
};
