// Every socket the daemon listens on: the protocol listeners of each service and the HTTP
// listeners. Opens them at start (all or none), re-opens changed addresses on SIGHUP, and
// closes them with a grace period at shutdown.

import { listenerKeys, type Config, type ListenerName } from '../config.js';
import { serveHttp, type HttpServer, type Route } from '../http/server.js';
import type { ListenAddress } from '../net/listen-address.js';
import { errorMessage, type Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { listen, type ConnectionHandler } from '../net/listener.js';
import { diffAddresses } from './reload-plan.js';

/** A protocol served on the addresses of its listener's config key (listenerKeys). */
export interface Service {
  name: Exclude<ListenerName, 'http'>;
  handler: ConnectionHandler;
}

interface Open {
  name: string;
  address: ListenAddress;
  close(graceMs?: number): Promise<void>;
}

export interface Listeners {
  /** Opens every configured address; on any failure closes what it opened and throws. */
  openAll(): Promise<void>;
  /** Closes addresses the config no longer names and opens new ones; failures are logged. */
  reconcile(): Promise<void>;
  close(graceMs: number): Promise<void>;
  /** `name=address` for each open listener, for the log. */
  summary(): string;
}

export function createListeners(deps: { services: Service[]; routes: Map<string, Route>; config: () => Config; logger: Logger; metrics: Metrics }): Listeners {
  const { services, routes, config, logger, metrics } = deps;
  const events = {
    opened: (l: string) => {
      metrics.connectionsOpen.inc({ listener: l });
      metrics.connectionsTotal.inc({ listener: l });
    },
    closed: (l: string) => metrics.connectionsOpen.dec({ listener: l }),
    refused: (l: string) => metrics.connectionsRefused.inc({ listener: l }),
    evicted: (l: string) => metrics.connectionsEvicted.inc({ listener: l }),
  };
  const unixOptions = () => ({ mode: config().unix_socket_mode, group: config().unix_socket_group });
  // Each entry of `groups` is one kind of listener: a service, or HTTP.
  const groups: { name: string; wanted: () => ListenAddress[]; open: (a: ListenAddress) => Promise<Open> }[] = [
    ...services.map((s) => ({
      name: s.name,
      wanted: () => config()[listenerKeys[s.name]],
      open: async (address: ListenAddress): Promise<Open> => {
        const limits = { maxConnections: config().max_connections, idleTimeoutMs: config().idle_timeout, requestTimeoutMs: config().request_timeout };
        const l = await listen(address, s.name, s.handler, limits, unixOptions(), logger, events);
        return { name: s.name, address, close: (g) => l.close(g) };
      },
    })),
    {
      name: 'http',
      wanted: () => config()[listenerKeys.http],
      open: async (address: ListenAddress): Promise<Open> => {
        const limits = { maxConnections: config().max_connections, maxBodyBytes: 65536, idleTimeoutMs: 5000 };
        const h: HttpServer = await serveHttp(address, routes, limits, unixOptions(), logger, metrics);
        return { name: 'http', address, close: (g) => h.close(g) };
      },
    },
  ];
  let open: Open[] = [];

  return {
    async openAll() {
      try {
        for (const g of groups) for (const a of g.wanted()) open.push(await g.open(a));
      } catch (err) {
        await Promise.all(open.map((o) => o.close(0)));
        open = [];
        throw err;
      }
    },
    async reconcile() {
      for (const g of groups) {
        const mine = open.filter((o) => o.name === g.name);
        const change = diffAddresses(
          mine.map((o) => o.address.text),
          g.wanted(),
        );
        for (const o of mine.filter((x) => change.close.includes(x.address.text))) {
          open = open.filter((x) => x !== o);
          await o.close(g.name === 'http' ? 1000 : undefined);
        }
        for (const a of change.open) {
          try {
            open.push(await g.open(a));
          } catch (err) {
            logger.error('SIGHUP: cannot open listener', { listener: g.name, address: a.text, error: errorMessage(err) });
          }
        }
      }
    },
    async close(graceMs) {
      await Promise.all(open.map((o) => o.close(graceMs)));
      open = [];
    },
    summary: () => open.map((o) => `${o.name}=${o.address.text}`).join(' '),
  };
}
