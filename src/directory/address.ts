// Address folding and extension handling, the way Postfix does it for its own tables.

/** Lower-cases a key. Postfix's cleanup keeps the sender's case, smtpd does not. */
export function fold(key: string): string {
  return key.toLowerCase();
}

/** Index of the last `@`, or -1. A local part may itself contain a quoted `@`. */
export function atIndex(address: string): number {
  return address.lastIndexOf('@');
}

export function domainOf(address: string): string {
  const at = atIndex(address);
  return at < 0 ? '' : address.slice(at + 1);
}

export function localOf(address: string): string {
  const at = atIndex(address);
  return at < 0 ? address : address.slice(0, at);
}

export interface SplitExtension {
  /** The address without its extension. */
  base: string;
  /** The extension including its delimiter character, e.g. `+tag`. */
  extension: string;
}

/**
 * Splits `user+ext@domain` at the first delimiter character of the local part, like
 * Postfix's split_addr(): never when the local part would become empty.
 */
export function splitExtension(address: string, delimiters: string): SplitExtension | undefined {
  if (delimiters === '') return undefined;
  const at = atIndex(address);
  if (at <= 0) return undefined;
  let cut = -1;
  if (delimiters.length === 1) {
    // The usual `recipient_delimiter = +`: one search instead of a test per character.
    cut = address.indexOf(delimiters, 1);
    if (cut >= at) cut = -1;
  } else {
    for (let i = 1; i < at; i++) {
      if (delimiters.includes(address[i]!)) {
        cut = i;
        break;
      }
    }
  }
  if (cut < 0) return undefined;
  return { base: address.slice(0, cut) + address.slice(at), extension: address.slice(cut, at) };
}

/** Re-adds an extension to the local part of `address` (propagate_unmatched_extensions). */
export function withExtension(address: string, extension: string): string {
  const at = atIndex(address);
  if (at <= 0 || extension === '') return address;
  return address.slice(0, at) + extension + address.slice(at);
}
