// What a SIGHUP applies and what it only reports: the pure comparison behind reload.

import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config.js';
import { diffAddresses, planReload } from '../../src/daemon/reload-plan.js';
import { parseListenList } from '../../src/net/listen-address.js';

const conf = (text: string) => parseConfigText(text, 'test.conf');

describe('planReload', () => {
  it('an unchanged config changes nothing, whatever file it came from', () => {
    const a = parseConfigText('log_level = info\n', 'a.conf');
    const b = parseConfigText('log_level = info\n', 'b.conf');
    expect(planReload(a, b)).toEqual({ restartNeeded: [], applied: [] });
  });

  it('listener addresses, log level and delimiter are applied; the rest waits for a restart', () => {
    const running = conf('log_level = info\nsocketmap_listen = 127.0.0.1:7025\nhash_workers = 2\n');
    const next = conf('log_level = debug\nsocketmap_listen = 127.0.0.1:7125\nhash_workers = 4\ndatabase_url = postgres://x@127.0.0.1/y\n');
    const plan = planReload(running, next);
    expect(plan.applied.sort()).toEqual(['log_level', 'socketmap_listen']);
    expect(plan.restartNeeded.sort()).toEqual(['database_url', 'hash_workers']);
  });

  it('a value written differently but parsed the same is no change', () => {
    expect(planReload(conf('idle_timeout = 300s\n'), conf('idle_timeout = 5m\n'))).toEqual({ restartNeeded: [], applied: [] });
  });
});

describe('diffAddresses', () => {
  it('keeps addresses still wanted, closes the others and opens the new ones', () => {
    const wanted = parseListenList('127.0.0.1:7025, unix:/run/mailmapd/socketmap');
    const d = diffAddresses(['inet:127.0.0.1:7025', 'inet:127.0.0.1:7999'], wanted);
    expect(d.close).toEqual(['inet:127.0.0.1:7999']);
    expect(d.open.map((a) => a.text)).toEqual(['unix:/run/mailmapd/socketmap']);
  });

  it('opens again an address that failed to open before', () => {
    const wanted = parseListenList('127.0.0.1:7025');
    expect(diffAddresses([], wanted).open.map((a) => a.text)).toEqual(['inet:127.0.0.1:7025']);
  });
});
