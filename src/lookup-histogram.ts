// The lookup-latency histogram, observed on every socketmap, auth and policy answer. It is
// prom-client's text format with a cheaper write path: prom-client's Histogram sorts and
// hashes the label object on every observe(), which cost a socketmap lookup more than
// the lookup itself; here a series is found by one string key and a bucket by a scan.

import type { Registry } from 'prom-client';

export interface LookupLabels {
  protocol: string;
  map: string;
  result: string;
}

interface Series {
  labels: LookupLabels;
  buckets: Float64Array;
  sum: number;
  count: number;
}

export interface LookupHistogram {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly labelNames: readonly string[];
  observe(labels: LookupLabels, seconds: number): void;
  /**
   * observe() for fixed labels, resolved once: for a hot path that knows its label sets
   * in advance. The series appears in /metrics on its first observation, as with observe().
   */
  observer(labels: LookupLabels): (seconds: number) => void;
  /** What prom-client's Registry asks a metric for when it renders /metrics. */
  get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>;
    aggregator: 'sum';
  }>;
}

export function createLookupHistogram(name: string, help: string, bounds: readonly number[], registry: Registry): LookupHistogram {
  const series = new Map<string, Series>();
  const seriesFor = (labels: LookupLabels): Series => {
    const key = `${labels.protocol}\0${labels.map}\0${labels.result}`;
    let s = series.get(key);
    if (s === undefined) {
      s = { labels: { protocol: labels.protocol, map: labels.map, result: labels.result }, buckets: new Float64Array(bounds.length), sum: 0, count: 0 };
      series.set(key, s);
    }
    return s;
  };
  const record = (s: Series, seconds: number) => {
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    if (i < bounds.length) s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
  };
  const h: LookupHistogram = {
    name,
    help,
    type: 'histogram',
    labelNames: ['protocol', 'map', 'result'],
    observe(labels, seconds) {
      record(seriesFor(labels), seconds);
    },
    observer(labels) {
      let s: Series | undefined;
      return (seconds) => record((s ??= seriesFor(labels)), seconds);
    },
    async get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const s of series.values()) {
        let cumulative = 0;
        bounds.forEach((b, i) => {
          cumulative += s.buckets[i]!;
          values.push({ labels: { le: b, ...s.labels }, value: cumulative, metricName: `${name}_bucket` });
        });
        values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${name}_bucket` });
        values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` });
        values.push({ labels: { ...s.labels }, value: s.count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
  registry.registerMetric(h as unknown as Parameters<Registry['registerMetric']>[0]);
  return h;
}
