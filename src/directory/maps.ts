// The maps the socketmap serves, by name, each with the lookup that answers it. This record
// is the one home of the map names: MapName and mapNames are derived from it, so a map
// cannot be named without its lookup. (A name without one would answer NOTFOUND for every
// key, which bounces real mail.) A new map is one line here.

import { fold } from './address.js';
import type { RouteLookups } from './routes.js';

/** What the maps are answered from: the directory's own lookups and the routing ones. */
export interface MapSources {
  domain(key: string): string | undefined;
  mailbox(key: string): string | undefined;
  alias(key: string): string | undefined;
  senders(key: string): string | undefined;
  routes: RouteLookups;
}

type MapLookup = (sources: MapSources, key: string) => string | undefined;

// In this order the socketmap matches a request's map name.
const mapLookups = {
  domains: (s, key) => s.domain(key),
  mailboxes: (s, key) => s.mailbox(key),
  aliases: (s, key) => s.alias(key),
  senders: (s, key) => s.senders(key),
  transport: (s, key) => s.routes.transport(fold(key)),
  relay_domains: (s, key) => s.routes.relayDomain(fold(key)),
  relay_recipients: (s, key) => s.routes.relayRecipient(fold(key)),
  sender_relayhost: (s, key) => s.routes.senderRelayhost(fold(key)),
  sender_relay_credentials: (s, key) => s.routes.senderCredentials(fold(key)),
  sender_bcc: (s, key) => s.routes.senderBcc(fold(key)),
  recipient_bcc: (s, key) => s.routes.recipientBcc(fold(key)),
} satisfies Record<string, MapLookup>;

export type MapName = keyof typeof mapLookups;

export const mapNames = Object.keys(mapLookups) as readonly MapName[];

/** Each map's lookup bound to `sources`, made once per directory. */
export function bindMaps(sources: MapSources): Record<MapName, (key: string) => string | undefined> {
  const bound = {} as Record<MapName, (key: string) => string | undefined>;
  for (const name of mapNames) bound[name] = (key) => mapLookups[name](sources, key);
  return bound;
}
