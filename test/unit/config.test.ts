// The config file: every key documented in the example, errors that name key and line.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configKeys, defaultOf, parseConfigText } from '../../src/config.js';

const example = readFileSync(new URL('../../config/mailmapd.conf.example', import.meta.url), 'utf8');

describe('config', () => {
  it('the example documents every key with its default and parses', () => {
    const cfg = parseConfigText(example, 'example');
    for (const key of configKeys) {
      const line = example.split('\n').find((l) => l.startsWith(`${key} =`));
      expect(line, `${key} is documented`).toBeDefined();
      expect(line!.slice(key.length + 2).trim()).toBe(defaultOf(key));
    }
    expect(cfg.schema).toBe('native');
  });

  it('the npm start config parses', () => {
    const cfg = parseConfigText(readFileSync(new URL('../../config/default.conf', import.meta.url), 'utf8'), 'default.conf');
    expect(cfg.database_url).toBe('');
    expect(cfg.socketmap_listen[0]).toMatchObject({ kind: 'inet', host: '127.0.0.1', port: 7025 });
  });

  it('names the key and the line of an error', () => {
    expect(() => parseConfigText('# c\n\nbogus = 1\n', 'f.conf')).toThrow('f.conf:3: unknown key "bogus"');
    expect(() => parseConfigText('max_connections = lots\n', 'f.conf')).toThrow(/f\.conf:1: max_connections: expected an integer/);
    expect(() => parseConfigText('socketmap_listen = inet:0.0.0.0:7025\n', 'f.conf')).toThrow(/f\.conf:1: socketmap_listen: refusing non-loopback/);
    expect(() => parseConfigText('auth_listen = unix:relative\n', 'f.conf')).toThrow(/auth_listen: unix socket path must be absolute/);
    expect(() => parseConfigText('just words\n', 'f.conf')).toThrow(/f\.conf:1: expected "key = value"/);
  });

  it('environment overrides the file, and unknown MAILMAPD_ variables are errors', () => {
    const cfg = parseConfigText('log_level = info\n', 'f', { MAILMAPD_LOG_LEVEL: 'debug', MAILMAPD_CONFIG: '/x' });
    expect(cfg.log_level).toBe('debug');
    expect(() => parseConfigText('', 'f', { MAILMAPD_NOPE: '1' })).toThrow(/unknown key "nope"/);
    expect(() => parseConfigText('', 'f', { MAILMAPD_MAIL_UID: '-1' })).toThrow(/environment MAILMAPD_MAIL_UID: mail_uid/);
  });

  it('continuation lines extend a value, main.cf style', () => {
    const cfg = parseConfigText('socketmap_listen = inet:127.0.0.1:1,\n  unix:/run/x\n', 'f');
    expect(cfg.socketmap_listen.map((a) => a.text)).toEqual(['inet:127.0.0.1:1', 'unix:/run/x']);
  });
});
