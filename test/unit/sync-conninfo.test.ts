// libpq's multi-host URLs, which node-postgres cannot read: split into one URL per host,
// in order, with target_session_attrs taken out for the host walk.

import { describe, expect, it } from 'vitest';
import { databaseOf, parseConnInfo, redactUrl } from '../../src/db/conninfo.js';

describe('multi-host database_url', () => {
  it('splits the hosts in order, with default and explicit ports and IPv6', () => {
    const c = parseConnInfo('postgres://u:pw@db1,db2:5433,[::1]:5434/mail?target_session_attrs=prefer-standby&sslmode=disable');
    expect(c.targetSessionAttrs).toBe('prefer-standby');
    expect(c.hosts.map((h) => [h.host, h.port])).toEqual([
      ['db1', 5432],
      ['db2', 5433],
      ['::1', 5434],
    ]);
    expect(c.hosts[1]!.url).toBe('postgres://u:pw@db2:5433/mail?sslmode=disable');
    expect(c.hosts[2]!.url).toBe('postgres://u:pw@[::1]:5434/mail?sslmode=disable');
  });

  it('a single host is unchanged but for the attributes; unknown attributes are refused', () => {
    expect(parseConnInfo('postgresql://h/db').hosts).toEqual([{ host: 'h', port: 5432, url: 'postgresql://h:5432/db' }]);
    expect(parseConnInfo('postgresql://h/db').targetSessionAttrs).toBe('any');
    expect(() => parseConnInfo('postgres://h/db?target_session_attrs=master')).toThrow(/target_session_attrs/);
    expect(parseConnInfo('postgres://h/db?connect_timeout=1').connectTimeoutMs).toBe(2000);
  });

  it('a password never shows in a redacted multi-host URL', () => {
    expect(redactUrl('postgres://u:secret@h1,h2/db')).toBe('postgres://u:***@h1,h2/db');
  });
});

describe('the database a URL names (a snapshot source)', () => {
  it('names every host of a multi-host URL, so two clusters never look like one', () => {
    const a = databaseOf('postgres://u:pw@db1:5432,db2:5433/mail?target_session_attrs=prefer-standby');
    const b = databaseOf('postgres://u:pw@other1:5432,other2:5433/mail?target_session_attrs=prefer-standby');
    expect(a).toBe('db1:5432,db2:5433/mail');
    expect(b).toBe('other1:5432,other2:5433/mail');
    expect(databaseOf('postgresql://u@[::1]:5434,h/db')).toBe('[::1]:5434,h:5432/db');
  });

  it('a single host reads as it always did: host:port/database, no credentials', () => {
    expect(databaseOf('postgres://u:secret@h/db')).toBe('h:5432/db');
    expect(databaseOf('postgres://u:secret@h:6543/db?sslmode=disable')).toBe('h:6543/db');
    expect(databaseOf('postgres:///db')).toBe(':5432/db');
    expect(databaseOf('host=/tmp dbname=db')).toBe('(unparsable database_url)');
  });

  it('a password is hidden even when it holds characters a URL should have escaped', () => {
    expect(redactUrl('postgres://u:s@c/r#t@h/db')).toBe('postgres://u:***@h/db');
    expect(redactUrl('postgres://u:secret@h:5432/db')).toBe('postgres://u:***@h:5432/db');
    expect(redactUrl('postgres://u@h/db')).toBe('postgres://u@h/db');
    expect(redactUrl('host=h password=secret')).toBe('(unparsable database_url)');
  });
});
