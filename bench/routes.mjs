// The routing maps beside `mailboxes`, asked of the directory in-process: what a socketmap
// lookup of each costs once the request is parsed (the socketmap bench measures the rest,
// which is the same for every map). 100k mailboxes, 100k relay recipients and 100k sender
// relay hosts; keys carry an extension, as Postfix sends them, so the fallbacks run.

import { load } from './lib.mjs';

const { createDirectory, emptyData } = await load('directory/directory.js');

export async function run(log) {
  const n = 100_000;
  const d = emptyData();
  for (let i = 0; i < 1000; i++) {
    d.domains.set(`d${i}.test`, true);
    d.routes.set(`domain_transport:d${i}.test`, `smtp:[mx${i}.example]`);
    d.routes.set(`relay_domain:r${i}.test`, '');
  }
  for (let i = 0; i < n; i++) {
    d.mailboxes.set(`u${i}@d${i % 1000}.test`, { password: '{PLAIN}x', quotaBytes: 0, active: true });
    d.routes.set(`relay_recipient:u${i}@r${i % 1000}.test`, '');
    d.routes.set(`sender_relayhost:u${i}@d${i % 1000}.test`, '[relay.example]:587');
  }
  const dir = createDirectory({ recipientDelimiter: '+' });
  dir.replaceAll(d);
  const pick = (domain) => Array.from({ length: 20_000 }, (_, i) => `u${(i * 7919) % n}+tag@${domain}${((i * 7919) % n) % 1000}.test`);
  const local = pick('d');
  const relayed = pick('r');
  const cases = [
    ['mailboxes', local],
    ['transport', local],
    ['relay_domains', relayed.map((k) => k.slice(k.indexOf('@') + 1))],
    ['relay_recipients', relayed],
    ['sender_relayhost', local],
  ];
  const perLookup = (map, keys) => {
    let found = 0;
    const t = process.hrtime.bigint();
    for (let r = 0; r < 25; r++) for (const k of keys) if (dir.lookup(map, k) !== undefined) found++;
    if (found === 0) throw new Error(`${map}: nothing found`);
    return Number(process.hrtime.bigint() - t) / (25 * keys.length);
  };
  for (const [map, keys] of cases) perLookup(map, keys); // warm up
  const base = perLookup('mailboxes', local);
  for (const [map, keys] of cases) {
    const ns = map === 'mailboxes' ? base : perLookup(map, keys);
    log(`${map.padEnd(18)} ${ns.toFixed(0).padStart(6)} ns per lookup   ${(ns / base).toFixed(2)}× mailboxes`);
  }
}
