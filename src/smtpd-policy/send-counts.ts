// Recipients sent, per address (a mailbox, or `@domain` for a domain's total) and per
// minute, for the sliding hour and day windows: counts shared by every host
// (shared-counts/buckets.ts), keyed by address, one bucket a minute. A read of the table
// replaces what is known, so that `send-usage reset` (zeroes) reaches every daemon.

import { createBucketCounts, type BucketCounts, type CountRow } from '../shared-counts/buckets.js';

/** Minutes since the Unix epoch: the buckets' key, also the database's (send_counts.minute). */
export const minuteOf = (ms: number): number => Math.floor(ms / 60_000);

export const HOUR_MINUTES = 60;
export const DAY_MINUTES = 1440;

export type SendCounts = BucketCounts;
export type { CountRow };

export const createSendCounts = (): SendCounts => createBucketCounts({ stored: 'replace' });
