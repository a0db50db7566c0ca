// The Grafana dashboard only graphs metrics the daemon exports, and no metric carries an
// unbounded label (a user, an address, an IP).

import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeRequest } from '../../src/checkpassword/wire.js';
import { createMetrics } from '../../src/metrics.js';
import { closePool, lineClient, plain, startDoors } from '../helpers/logins.js';

describe('metrics', () => {
  it('every metric the Grafana dashboard queries exists', async () => {
    const m = createMetrics(true);
    const exported = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
    const dash = readFileSync(new URL('../../config/grafana/mailmapd.json', import.meta.url), 'utf8');
    const used = new Set([...dash.matchAll(/mailmapd_[a-z0-9_]+/g)].map((x) => x[0].replace(/_(bucket|count|sum)$/, '')));
    expect(used.size).toBeGreaterThan(15);
    for (const name of used) expect(exported, name).toContain(name);
  });

  it('labels are bounded sets only', async () => {
    const m = createMetrics(false);
    // service: serviceOf() maps every login's service to one of eight names (test/integration/accounts.test.ts).
    const allowed = new Set(['protocol', 'map', 'result', 'listener', 'reason', 'table', 'scheme', 'command', 'decision', 'kind', 'service']);
    for (const metric of await m.registry.getMetricsAsJSON()) {
      const names = ((metric as unknown as { labelNames?: string[] }).labelNames ?? []) as string[];
      for (const l of names) expect(allowed, `${metric.name}{${l}}`).toContain(l);
    }
    const labelNames = Object.values(m).flatMap((v) => ((v as { labelNames?: string[] })?.labelNames ?? []) as string[]);
    for (const l of labelNames) expect(allowed).toContain(l);
  });

  describe('label values under hostile input', () => {
    afterAll(() => closePool());

    it('stay in bounded sets whatever a client sends', async () => {
      const doors = await startDoors({ failureDelayMs: 0 });
      const marker = 'zq7marker';
      try {
        const hello = 'VERSION\t1\t2\nCPID\t42\n';
        const inputs = [
          `${hello}AUTH\t1\t${marker}-MECH\tservice=smtp\n`,
          `${hello}AUTH\t1\tPLAIN\tservice=${marker}\tresp=${plain(`${marker}@example.org`, marker)}\n`,
          `${hello}${marker}\tcommand\n`,
          `CPID\t${marker}\n`,
          `VERSION\t${marker}\t0\n`,
        ];
        for (const input of inputs) {
          const c = await lineClient(doors.authSocket);
          c.send(input);
          await Promise.race([c.closed, c.waitFor((l) => l.startsWith('FAIL'), 5000).catch(() => {})]);
          c.close();
        }
        const frames = [
          encodeRequest({ mode: 'auth', user: `${marker}@example.org`, password: marker, service: marker, remoteIp: '', localIp: '', secured: false }),
          Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from(`${marker}\0`)]),
        ];
        for (const frame of frames) {
          await new Promise<void>((resolve) => {
            const s = connect(doors.checkpasswordSocket, () => s.write(frame));
            s.on('data', () => s.end());
            s.on('error', () => resolve());
            s.on('close', () => resolve());
          });
        }
        const values = new Map<string, Set<string>>();
        for (const metric of await doors.metrics.registry.getMetricsAsJSON()) {
          for (const v of (metric as unknown as { values: { labels: Record<string, string | number> }[] }).values) {
            for (const [k, x] of Object.entries(v.labels)) {
              if (k === 'le' || k === 'quantile') continue;
              if (!values.has(k)) values.set(k, new Set());
              values.get(k)!.add(String(x));
            }
          }
        }
        expect(values.get('reason')?.size, 'some input was counted as bad').toBeGreaterThan(0);
        for (const [label, set] of values) {
          for (const v of set) {
            expect(v.toLowerCase(), `${label}=${v}`).not.toContain(marker);
            expect(v, `${label}=${v}`).toMatch(/^[a-z0-9_-]{1,32}$/);
          }
        }
        expect([...(values.get('listener') ?? [])].every((l) => ['auth', 'checkpassword', 'socketmap', 'http'].includes(l))).toBe(true);
      } finally {
        await doors.close();
      }
    });
  });
});
