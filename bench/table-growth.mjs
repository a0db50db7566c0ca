// The big tables' growth (issue 36: "the tables grow without stalls that lookups would
// feel"): puts 20 million entries into one byte table, as a load of 10M mailboxes + 10M
// aliases would into two, timing each put, and prints the slowest ones with the id count
// they happened at, beside the median. A put that grows a per-id array or the index in
// one go shows here as one put of tens of milliseconds; everything the event loop does
// waits that long behind it.
// Runnable alone: node bench/table-growth.mjs [entries]   (needs `npm run build`)

import { fileURLToPath } from 'node:url';
import { load } from './lib.mjs';

export async function run(log, entries = 20_000_000) {
  const { createByteTable } = await load('directory/byte-table.js');
  const t = createByteTable({ numbers: true });
  const times = new Float64Array(entries);
  for (let i = 0; i < entries; i++) {
    const t0 = performance.now();
    t.put(`user${i}\u0000AB`, '\u0002\u0040\u0000\u000cabcdef', 1 << 30, 0);
    times[i] = performance.now() - t0;
  }
  const slow = [...times.keys()].filter((i) => times[i] > 5).map((i) => `${(times[i]).toFixed(1)} ms at ${i.toLocaleString('en')}`);
  // A typed array sorts numerically, without 20 million boxed numbers.
  const sorted = Float64Array.from(times).sort();
  const q = (p) => sorted[Math.min(entries - 1, Math.floor((p / 100) * entries))];
  log(
    `table-growth: ${entries.toLocaleString('en')} puts into one table: median ${(q(50) * 1000).toFixed(2)} µs, p99.99 ${(q(99.99) * 1000).toFixed(1)} µs, slowest ${sorted[entries - 1].toFixed(1)} ms`,
  );
  log(`table-growth: puts over 5 ms: ${slow.length === 0 ? 'none' : slow.join(', ')}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run(console.log, Number(process.argv[2] ?? 20_000_000));
