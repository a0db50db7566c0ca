// The hash worker pool: verification off the main thread with a bounded queue that
// answers `busy` at once when full, metrics per scheme and result, clean shutdown.

import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { BusyError, createHashPool, type HashPool } from '../../src/password/pool.js';

const sha512 = '{SHA512-CRYPT}$6$lXRp1ig.4KPF2O5i$8hULb3sBLbI1Eo5rjuOrw262V.pizuOv3igQTRCz/cfOctXAnCnIVo7857/Esw/QbDljhogP5FOeQDddoyfos0';
const argon = '{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$p0mpeMcwnWXYidM9ojQ5Lg$N5YjHg6qTNx7znGUV+wqtSzv7mMMoRayqY5xEsG2OHs';

let pools: HashPool[] = [];
function pool(workers: number, queueLimit: number) {
  const metrics = createMetrics(false);
  const p = createHashPool({ workers, queueLimit, defaultScheme: 'CRYPT', metrics, logger: silentLogger });
  pools.push(p);
  return { p, metrics };
}
afterEach(async () => {
  await Promise.all(pools.map((p) => p.close()));
  pools = [];
});

async function counter(metrics: ReturnType<typeof createMetrics>, name: string) {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values ?? [];
}

describe('hash pool', () => {
  it('verifies in worker threads: ok, mismatch, bad_hash, counted per scheme and result', async () => {
    const { p, metrics } = pool(2, 10);
    expect(await p.verify('secret', sha512)).toBe('ok');
    expect(await p.verify('wrong', sha512)).toBe('mismatch');
    expect(await p.verify('secret', argon)).toBe('ok');
    expect(await p.check('secret', '{ROT13}frperg')).toMatchObject({ result: 'bad_hash', reason: expect.stringContaining('unknown scheme') });
    expect(await p.verify('secret', '$2y$10$b/e1k4qmm32/1Q6ZbLkO8uMwv.G7iggLa53r7W0zV3GKmdBSERzsq')).toBe('ok');
    expect(p.completed).toBe(5);
    const values = await counter(metrics, 'mailmapd_password_verifications_total');
    const get = (scheme: string, result: string) => values.find((v) => v.labels.scheme === scheme && v.labels.result === result)?.value;
    expect(get('SHA512-CRYPT', 'ok')).toBe(1);
    expect(get('SHA512-CRYPT', 'mismatch')).toBe(1);
    expect(get('ARGON2ID', 'ok')).toBe(1);
    expect(get('unknown', 'bad_hash')).toBe(1);
    expect(get('CRYPT', 'ok')).toBe(1);
  });

  it('hashes in the workers too', async () => {
    const { p } = pool(1, 10);
    const h = await p.hash('secret', 'SHA512-CRYPT');
    expect(h).toMatch(/^\{SHA512-CRYPT\}\$6\$/);
    expect(await p.verify('secret', h)).toBe('ok');
    await expect(p.hash('secret', 'NOPE')).rejects.toThrow(/unknown password scheme/);
  });

  it('answers busy at once when the queue is full, before any queued job has finished', async () => {
    const { p, metrics } = pool(1, 2);
    const running = [p.verify('secret', argon), p.verify('secret', argon), p.verify('secret', argon)];
    expect(await p.verify('secret', argon)).toBe('busy');
    expect(p.completed).toBe(0); // refused without waiting for any queued hash to finish
    await expect(p.hash('secret', 'ARGON2ID')).rejects.toBeInstanceOf(BusyError);
    expect((await counter(metrics, 'mailmapd_hash_rejected_total'))[0]?.value).toBe(2);
    expect((await counter(metrics, 'mailmapd_hash_queue_depth'))[0]?.value).toBe(2);
    expect(await Promise.all(running)).toEqual(['ok', 'ok', 'ok']);
    expect((await counter(metrics, 'mailmapd_hash_queue_depth'))[0]?.value).toBe(0);
    expect(await p.verify('secret', argon)).toBe('ok'); // and accepts again once drained
  });

  it('refuses an oversized password without sending it to a worker', async () => {
    const { p } = pool(1, 1);
    expect(await p.verify('x'.repeat(5000), '{PLAIN}' + 'x'.repeat(5000))).toBe('mismatch');
    expect(p.completed).toBe(0);
  });

  it('keeps the event loop turning under a flood of SHA512-CRYPT and ARGON2ID checks', async () => {
    // How long the loop may stall under this flood is measured in bench/passwords.mjs
    // (loop-delay p99); here, that the hashing happens off the main thread at all: had it
    // run there, every answer would be in before the loop turned once.
    const { p } = pool(2, 1000);
    let turns = 0;
    let stopped = false;
    const tick = () => {
      turns++;
      if (!stopped) setImmediate(tick);
    };
    setImmediate(tick);
    const turnAtAnswer: number[] = [];
    const flood: Promise<string>[] = [];
    const check = (pw: string, stored: string) =>
      flood.push(
        p.verify(pw, stored).then((r) => {
          turnAtAnswer.push(turns);
          return r;
        }),
      );
    for (let i = 0; i < 150; i++) check(i % 2 ? 'secret' : 'wrong', sha512);
    for (let i = 0; i < 6; i++) check('secret', argon);
    const results = await Promise.all(flood);
    stopped = true;
    expect(results.filter((r) => r === 'ok').length).toBe(75 + 6);
    expect(turnAtAnswer[0]).toBeGreaterThan(0);
    expect(new Set(turnAtAnswer).size).toBeGreaterThan(1);
  });

  it('close() answers waiting jobs busy and ends the workers', async () => {
    const { p } = pool(1, 10);
    const a = p.verify('secret', argon);
    const b = p.verify('secret', argon);
    await p.close();
    expect(await b).toBe('busy');
    expect(['ok', 'busy']).toContain(await a);
    expect(await p.verify('secret', sha512)).toBe('busy');
  });
});
