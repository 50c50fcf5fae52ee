// The clients' connections to the main port: counted by protocol, and each given a maximum age,
// drawn with jitter when it connects, after which its client is sent elsewhere: HTTP/2 gets GOAWAY
// (streams in flight finish, new requests open a new connection), HTTP/1.1 gets `Connection: close`
// on its next response. Watches still open on such a connection are ended cleanly after a short
// grace, as the end of a watch is normal to a client (client-go re-watches from its last
// resourceVersion, now on a fresh connection). Without an age, a client's one HTTP/2 connection
// would stay on one proxy replica for ever, however the replicas behind a load balancer change
// (the idea of kube-apiserver's --goaway-chance, with a deterministic age instead of a chance).
import type { Http2SecureServer, ServerHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { isHttp2, type ClientRequest, type ClientResponse } from './client-http.js';
import type { InflightEntry, InflightOwner } from './inflight.js';

export type ClientProtocol = 'h2' | 'http/1.1';

export interface ClientConnectionsOptions {
  /** One connection's maximum age in milliseconds, drawn when it connects; 0: never. */
  readonly maxAgeMs: () => number;
  /** How long watches may go on on a connection past its age before they are ended cleanly. */
  readonly watchGraceMs: number;
  readonly registry: Registry;
  readonly log: Logger;
}

/** Default grace for watches: the client has moved its new requests to a new connection by then. */
export const WATCH_GRACE_MS = 5_000;

interface Metrics {
  readonly open: Gauge<'protocol'>;
  readonly opened: Counter<'protocol'>;
  readonly recycles: Counter<'protocol'>;
}

function createMetrics(registry: Registry): Metrics {
  return {
    open: new Gauge({
      name: 'kube_cache_proxy_client_connections',
      help: 'Client connections open on the main port, by protocol (h2 or http/1.1).',
      labelNames: ['protocol'] as const,
      registers: [registry],
    }),
    opened: new Counter({
      name: 'kube_cache_proxy_client_connections_total',
      help: 'Client connections accepted on the main port, by protocol (h2 or http/1.1).',
      labelNames: ['protocol'] as const,
      registers: [registry],
    }),
    recycles: new Counter({
      name: 'kube_cache_proxy_client_connection_recycles_total',
      help: 'Client connections sent elsewhere at their maximum age (GOAWAY for h2, Connection: close for http/1.1), by protocol.',
      labelNames: ['protocol'] as const,
      registers: [registry],
    }),
  };
}

/** One client connection; told of the watches its requests run (as their InflightOwner). */
export class ClientConnection implements InflightOwner {
  readonly #watches = new Set<InflightEntry>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #expired = false;
  #recycled = false;
  #closed = false;

  constructor(
    readonly protocol: ClientProtocol,
    private readonly hooks: {
      /** At the age: HTTP/2 sends GOAWAY; HTTP/1.1 marks the response being written, if any. */
      readonly expire: () => void;
      readonly recycled: () => void;
      readonly destroy: () => void;
      readonly graceMs: number;
    },
  ) {}

  get expired(): boolean {
    return this.#expired;
  }

  /** Starts the age clock (ageMs 0: never). */
  start(ageMs: number): void {
    if (ageMs > 0) this.#later(ageMs, () => this.#expire());
  }

  add(e: InflightEntry): void {
    if (!e.longRunning) return;
    this.#watches.add(e);
    // A watch that starts on a connection already past its age (HTTP/1.1: its response says
    // `Connection: close`) gets the same grace.
    if (this.#expired) this.#later(this.hooks.graceMs, () => this.#end(e));
  }

  delete(e: InflightEntry): void {
    this.#watches.delete(e);
  }

  /** Counts the connection as recycled, once. */
  recycled(): void {
    if (this.#recycled) return;
    this.#recycled = true;
    this.hooks.recycled();
  }

  closed(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#watches.clear();
  }

  destroy(): void {
    this.hooks.destroy();
  }

  #later(ms: number, f: () => void): void {
    if (this.#closed) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) f();
    }, ms);
    t.unref();
    this.#timers.add(t);
  }

  #expire(): void {
    this.#expired = true;
    this.hooks.expire();
    if (this.#watches.size > 0) this.#later(this.hooks.graceMs, () => { for (const e of [...this.#watches]) this.#end(e); });
  }

  #end(e: InflightEntry): void {
    if (!this.#watches.has(e)) return;
    this.recycled();
    e.endCleanly();
  }
}

/** The response Node is writing on an HTTP/1.1 connection, if any. */
function currentResponse(socket: Duplex): ClientResponse | undefined {
  const current = (socket as Duplex & { _httpMessage?: ClientResponse | null })._httpMessage;
  return current ?? undefined;
}

export class ClientConnections {
  readonly #byTransport = new WeakMap<object, ClientConnection>();
  readonly #open = new Set<ClientConnection>();
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #metrics: Metrics;

  constructor(private readonly o: ClientConnectionsOptions) {
    this.#metrics = createMetrics(o.registry);
  }

  /** Follows the server's connections: HTTP/2 ones as sessions, the others (HTTP/1.1) as TLS sockets. */
  attach(server: Http2SecureServer): void {
    server.on('session', (session: ServerHttp2Session) => this.#http2(session));
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol !== 'h2') this.#http1(socket);
    });
  }

  /**
   * The connection a request came on. An HTTP/1.1 connection past its age answers this request
   * with `Connection: close`.
   */
  forRequest(req: ClientRequest, res: ClientResponse): ClientConnection | undefined {
    if (isHttp2(req)) return this.#byTransport.get(req.stream.session ?? {});
    const conn = this.#byTransport.get(req.socket);
    if (conn?.expired) {
      res.shouldKeepAlive = false;
      conn.recycled();
    }
    return conn;
  }

  /** Shutting down: HTTP/2 clients are told to send nothing more on their connections. */
  goAwayAll(): void {
    for (const s of this.#sessions) if (!s.closed && !s.destroyed) s.close();
  }

  /** Cuts every connection still open. */
  destroyAll(): void {
    for (const c of [...this.#open]) c.destroy();
  }

  #opened(conn: ClientConnection, onClose: (done: () => void) => void): void {
    this.#open.add(conn);
    this.#metrics.open.inc({ protocol: conn.protocol });
    this.#metrics.opened.inc({ protocol: conn.protocol });
    onClose(() => {
      this.#open.delete(conn);
      this.#metrics.open.dec({ protocol: conn.protocol });
      conn.closed();
    });
    conn.start(this.o.maxAgeMs());
  }

  #hooks(protocol: ClientProtocol, expire: () => void, destroy: () => void) {
    return {
      expire,
      destroy,
      graceMs: this.o.watchGraceMs,
      recycled: () => this.#metrics.recycles.inc({ protocol }),
    };
  }

  #http2(session: ServerHttp2Session): void {
    const conn: ClientConnection = new ClientConnection('h2', this.#hooks('h2', () => {
      conn.recycled();
      this.o.log.debug('client connection at its maximum age: GOAWAY');
      // GOAWAY with the last stream it has taken: those finish, the client opens a new connection
      // for the rest (Go's transport retries requests the server did not take).
      if (!session.closed && !session.destroyed) session.close();
    }, () => session.destroy()));
    this.#byTransport.set(session, conn);
    this.#sessions.add(session);
    this.#opened(conn, (done) => session.once('close', () => {
      this.#sessions.delete(session);
      done();
    }));
  }

  #http1(socket: TLSSocket): void {
    const conn: ClientConnection = new ClientConnection('http/1.1', this.#hooks('http/1.1', () => {
      // A response not yet begun is the first after the age: it closes the connection.
      const res = currentResponse(socket);
      if (res && !res.headersSent) {
        res.shouldKeepAlive = false;
        conn.recycled();
      }
    }, () => socket.destroy()));
    this.#byTransport.set(socket, conn);
    this.#opened(conn, (done) => socket.once('close', done));
  }
}
