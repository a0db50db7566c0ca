// Extension splitting as Postfix's split_addr() does it: at the first delimiter character of
// the local part, never leaving the local part empty, never past the last `@`.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitExtension, withExtension } from '../../src/directory/address.js';

/** The rule written out character by character, for comparison. */
function reference(address: string, delimiters: string) {
  const at = address.lastIndexOf('@');
  if (delimiters === '' || at <= 0) return undefined;
  for (let i = 1; i < at; i++) {
    if (delimiters.includes(address[i]!)) return { base: address.slice(0, i) + address.slice(at), extension: address.slice(i, at) };
  }
  return undefined;
}

describe('splitExtension', () => {
  it('splits like the character-by-character rule, for one delimiter and several', () => {
    const addr = fc.string({ unit: fc.constantFrom('a', 'b', '+', '-', '@', '.'), maxLength: 16 });
    fc.assert(
      fc.property(addr, fc.constantFrom('', '+', '-', '+-', '-+'), (a, d) => {
        expect(splitExtension(a, d)).toEqual(reference(a, d));
      }),
      { numRuns: 2000 },
    );
  });

  it('examples', () => {
    expect(splitExtension('alice+tag@example.org', '+')).toEqual({ base: 'alice@example.org', extension: '+tag' });
    expect(splitExtension('+tag@example.org', '+')).toBeUndefined(); // the local part would be empty
    expect(splitExtension('alice@ex+ample.org', '+')).toBeUndefined(); // a `+` in the domain is not an extension
    expect(splitExtension('a-b+c@x.test', '+-')).toEqual({ base: 'a@x.test', extension: '-b+c' });
    expect(withExtension('bob@example.net', '+tag')).toBe('bob+tag@example.net');
  });
});
