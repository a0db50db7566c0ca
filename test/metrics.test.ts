// The Grafana dashboard only graphs metrics the daemon exports, and no metric carries an
// unbounded label (a user, an address, an IP).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../src/metrics.js';

describe('metrics', () => {
  it('every metric the Grafana dashboard queries exists', async () => {
    const m = createMetrics(true);
    const exported = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
    const dash = readFileSync(new URL('../config/grafana/mailmapd.json', import.meta.url), 'utf8');
    const used = new Set([...dash.matchAll(/mailmapd_[a-z0-9_]+/g)].map((x) => x[0].replace(/_(bucket|count|sum)$/, '')));
    expect(used.size).toBeGreaterThan(15);
    for (const name of used) expect(exported, name).toContain(name);
  });

  it('labels are bounded sets only', async () => {
    const m = createMetrics(false);
    // service: serviceOf() maps every login's service to one of eight names (test/accounts.test.ts).
    const allowed = new Set(['protocol', 'map', 'result', 'listener', 'reason', 'table', 'scheme', 'command', 'decision', 'kind', 'service']);
    for (const metric of await m.registry.getMetricsAsJSON()) {
      const names = ((metric as unknown as { labelNames?: string[] }).labelNames ?? []) as string[];
      for (const l of names) expect(allowed, `${metric.name}{${l}}`).toContain(l);
    }
    const labelNames = Object.values(m).flatMap((v) => ((v as { labelNames?: string[] })?.labelNames ?? []) as string[]);
    for (const l of labelNames) expect(allowed).toContain(l);
  });
});
