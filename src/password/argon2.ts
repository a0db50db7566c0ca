// ARGON2I and ARGON2ID (PHC strings `$argon2id$v=19$m=…,t=…,p=…$salt$hash`) through the
// `argon2` package. New hashes use p=1 because Dovecot verifies with libsodium, which only
// accepts one lane; memory and time match doveadm's ARGON2ID defaults.

import argon2 from 'argon2';
import { BadHashError } from './scheme.js';
import type { Scheme } from './types.js';

// A stored hash asking for gigabytes or hours is an attack on the workers, not a password.
const MAX_MEMORY_KIB = 1 << 20;
const MAX_TIME = 64;

const phc = /^\$(argon2id|argon2i)\$(?:v=(\d+)\$)?([a-z]=\d{1,10}(?:,[a-z]=\d{1,10}){2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** m, t and p of a PHC string, in whatever order they were written. */
function params(list: string): Record<string, number> {
  return Object.fromEntries(list.split(',').map((kv) => [kv[0]!, Number(kv.slice(2))]));
}

/**
 * The `argon2` package writes its parameters sorted (`m=…,p=…,t=…`); libsodium, and so
 * Dovecot, accepts only the reference order `m=…,t=…,p=…`.
 */
function referenceOrder(encoded: string): string {
  const m = phc.exec(encoded);
  if (!m) throw new Error('argon2 produced an unexpected string');
  const p = params(m[3]!);
  return `$${m[1]}$v=${m[2] ?? '19'}$m=${p.m},t=${p.t},p=${p.p}$${m[4]}$${m[5]}`;
}

function argonScheme(name: 'ARGON2I' | 'ARGON2ID', type: 'argon2i' | 'argon2id'): Scheme {
  return {
    name,
    async verify(pw, s) {
      const m = phc.exec(s.data);
      if (!m) throw new BadHashError(name, 'not an argon2 PHC string');
      const p = params(m[3]!);
      if (!(p.m! > 0 && p.t! > 0 && p.p! > 0)) throw new BadHashError(name, 'argon2 parameters m, t, p missing');
      if (p.m! > MAX_MEMORY_KIB || p.t! > MAX_TIME) throw new BadHashError(name, 'argon2 cost parameters out of range');
      try {
        return await argon2.verify(s.data, pw);
      } catch {
        throw new BadHashError(name, 'argon2 rejected the stored hash');
      }
    },
    hash: async (pw) =>
      referenceOrder(await argon2.hash(pw, { type: type === 'argon2i' ? argon2.argon2i : argon2.argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 })),
  };
}

export const argonSchemes: Scheme[] = [argonScheme('ARGON2I', 'argon2i'), argonScheme('ARGON2ID', 'argon2id')];
