// The `senders` map (Postfix's smtpd_sender_login_maps): the logins that may use an address
// as their MAIL FROM. Pure, over the directory's tables through the functions it is given.
//
// A login may send as an address when
//   - it is the address's mailbox (the extension and an alias domain of the mailbox's
//     domain left out: alice+x@alias.test is alice@example.org's — unless the address with
//     its extension is a mailbox of its own),
//   - it is a mailbox the address's alias delivers to, followed through aliases of aliases
//     to the final expansion, as the `aliases` map resolves it (exact, without the
//     extension, then the alias domain's target) — but never through a catch-all: owning
//     @domain must not mean owning every address of it,
//   - or it is granted one of those names of the address, or its `@domain` (or the
//     target's), in send_as.
// Only active mailboxes in active domains are answered, and a grant for an address in a
// domain the directory has but does not serve (inactive, or an inactive alias domain) grants
// nothing. A grant for an address in a domain the directory does not know at all is kept:
// an outside address someone may use (a mailbox's own address elsewhere).

import { atIndex, domainOf, fold, localOf, splitExtension } from './address.js';

export interface SenderTables {
  /** The recipient_delimiter characters now. */
  delimiters(): string;
  /** An active mailbox in an active domain. */
  activeMailbox(address: string): boolean;
  /** The comma-joined destinations of the alias of exactly `address`, in a served domain. */
  aliasOf(address: string): string | undefined;
  /** The target of `domain` when it is an active alias domain of an active domain. */
  aliasDomainTarget(domain: string): string | undefined;
  /** A domain the directory has but does not serve (inactive, an inactive alias domain, or one of an inactive domain). */
  unserved(domain: string): boolean;
  /** The comma-joined mailboxes granted exactly `address` (or `@domain`) in send_as. */
  grants(address: string): string | undefined;
}

/** Addresses an expansion visits at most, as Postfix's virtual_alias_expansion_limit. */
const maxExpansion = 1000;
/** Nesting followed at most, as Postfix's virtual_alias_recursion_limit. */
const maxDepth = 1000;

// Long because it is a closure over the tables; each function inside does one thing.
export function createSenders(t: SenderTables): (key: string) => string | undefined {
  /**
   * The names of the mailbox an address stands for: the address and its form in the alias
   * domain's target; without its extension (and in the target) only when neither of those
   * is a mailbox itself (`a+b@` may be a mailbox of its own, not `a@`'s).
   */
  const names = (address: string): string[] => {
    const target = t.aliasDomainTarget(domainOf(address));
    const inTarget = (a: string) => (target === undefined ? [a] : [a, `${localOf(a)}@${target}`]);
    const full = inTarget(address);
    const split = splitExtension(address, t.delimiters());
    return split === undefined || full.some(t.activeMailbox) ? full : [...full, ...inTarget(split.base)];
  };

  /** The mailbox an address delivers to when it has no alias. */
  const mailboxOf = (address: string): string | undefined => names(address).find(t.activeMailbox);

  /** The alias that resolves `address`, as the `aliases` map finds it, but never a catch-all. */
  const aliasFor = (address: string): string | undefined => {
    const split = splitExtension(address, t.delimiters());
    const own = t.aliasOf(address) ?? (split ? t.aliasOf(split.base) : undefined);
    if (own !== undefined) return own;
    // A mailbox answers with itself: an alias domain's alias never takes its mail.
    if (t.activeMailbox(address) || (split && t.activeMailbox(split.base))) return undefined;
    const target = t.aliasDomainTarget(domainOf(address));
    if (target === undefined) return undefined;
    const rewritten = `${localOf(address)}@${target}`;
    return t.aliasOf(rewritten) ?? (split ? t.aliasOf(`${localOf(split.base)}@${target}`) : undefined);
  };

  return (key) => {
    const a = fold(key);
    const at = atIndex(a);
    if (at <= 0 || at === a.length - 1) return undefined;
    const out = new Set<string>();
    const own = names(a);
    for (const f of own) if (t.activeMailbox(f)) out.add(f);

    // The members of the final expansion of the address's alias. As Postfix's cleanup does,
    // an address met again is not expanded again: it stands for its own mailbox.
    const seen = new Set(own);
    const expand = (destinations: string, depth: number): void => {
      for (const d of destinations.split(',')) {
        if (d === '' || d.startsWith('@') || seen.size >= maxExpansion) continue;
        const next = seen.has(d) || depth >= maxDepth ? undefined : aliasFor(d);
        seen.add(d);
        if (next !== undefined) expand(next, depth + 1);
        else {
          const m = mailboxOf(d);
          if (m !== undefined) out.add(m);
        }
      }
    };
    const alias = aliasFor(a);
    if (alias !== undefined) expand(alias, 1);

    // Grants of the address's names and of their domains.
    const granted = new Set(own);
    for (const f of own) granted.add(`@${domainOf(f)}`);
    for (const g of granted) {
      if (t.unserved(domainOf(g))) continue;
      const mailboxes = t.grants(g);
      if (mailboxes !== undefined) for (const m of mailboxes.split(',')) if (t.activeMailbox(m)) out.add(m);
    }
    return out.size === 0 ? undefined : [...out].join(',');
  };
}
