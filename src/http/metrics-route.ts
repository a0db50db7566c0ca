// `GET /metrics`: the Prometheus text, rendered at most once per interval however many
// scrapers ask. Rendering walks every metric (histograms with their buckets) and costs
// milliseconds and a fresh string each time; scrapers asking within the interval share
// one rendering, and one Buffer, so a flood of scrapes costs the daemon nothing more
// than sending the same bytes again.

import { performance } from 'node:perf_hooks';
import type { Route } from './server.js';

export interface MetricsRouteOptions {
  render: () => Promise<string>;
  contentType: string;
  /** Milliseconds a rendering is served for (default 1000). */
  intervalMs?: number;
  /** Monotonic milliseconds; tests inject their own. */
  now?: () => number;
}

export function createMetricsRoute(opts: MetricsRouteOptions): Route {
  const intervalMs = opts.intervalMs ?? 1000;
  const now = opts.now ?? (() => performance.now());
  let cached: { at: number; body: Promise<Buffer> } | undefined;
  return async () => {
    const t = now();
    if (cached === undefined || t - cached.at >= intervalMs) {
      const body = opts.render().then((text) => Buffer.from(text));
      cached = { at: t, body };
      // A failed rendering is not served to the next scraper.
      body.catch(() => {
        if (cached?.body === body) cached = undefined;
      });
    }
    return { status: 200, body: await cached.body, contentType: opts.contentType };
  };
}
