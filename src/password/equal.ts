// Constant-time comparison for secrets of any length: both sides are hashed first, so the
// time taken reveals neither the content nor the length of the stored value.

import { createHash, timingSafeEqual } from 'node:crypto';

export function secretEqual(a: Buffer | string, b: Buffer | string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}
