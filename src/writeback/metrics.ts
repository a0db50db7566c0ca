// The write-back's metrics are made in src/metrics.ts with every other metric; this name
// stays for the doors that import it from here.
export { createWritebackMetrics, type WritebackMetrics } from '../metrics.js';
