// `npm run bench`: every benchmark in one run, so that the ratios it prints compare
// numbers measured on the same machine at the same time. Needs `npm run build` first
// (npm ci does it) and PostgreSQL on 127.0.0.1:5432 (MAILMAPD_BENCH_PG to change).
// `npm run bench -- sync socketmap` runs only the named ones.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';

const all = [
  'sync',
  'replicas',
  'socketmap',
  'routes',
  'passwords',
  'logins',
  'lua',
  'app-passwords',
  'oauth2',
  'snapshot',
  'writeback',
  'policy',
  'policy-postfix',
  'shared',
  'scale',
  'table-growth',
];
const wanted = process.argv.slice(2).filter((a) => all.includes(a));
const lines = [];
const log = (line) => {
  lines.push(line);
  console.log(line);
};

log(`mailmapd benchmarks, ${new Date().toISOString()}, node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
for (const name of wanted.length ? wanted : all) {
  const file = new URL(`./${name}.mjs`, import.meta.url);
  if (!existsSync(file)) continue;
  log(`\n## ${name}`);
  const t = performance.now();
  try {
    const mod = await import(file.href);
    await mod.run(log);
  } catch (err) {
    log(`${name}: FAILED: ${err instanceof Error ? err.stack : err}`);
    process.exitCode = 1;
  }
  log(`(${name}: ${((performance.now() - t) / 1000).toFixed(0)} s)`);
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}.txt`, import.meta.url), lines.join('\n') + '\n');
