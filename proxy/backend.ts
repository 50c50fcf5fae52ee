// One apiserver the proxy forwards to: its connection pools, what it has in flight, its health.
//
// Two pools per apiserver: `passthrough` trusts the apiserver's CA but presents no client
// certificate, so a client's request reaches the apiserver with only the client's own credentials;
// `identity` presents the proxy's own client certificate (if its kubeconfig has one) and is used
// with the proxy's Authorization for impersonated requests and the cache.
//
// Connections are recycled after a maximum age (plus jitter, drawn per connection): a connection
// past its age takes no new request and closes once its requests are done, so that the
// connections of a long-running proxy do not stay where they were opened, e.g. all on the
// apiservers that were up while another one restarted.
import { Pool } from 'undici';
import type { ConnectionOptions } from 'node:tls';
import { BackendHealth } from './backend-health.js';
import { decayedThrottle, type Candidate, type RequestKind } from './balancer.js';

/** How long shutdown waits for upstream requests in flight before cutting them. */
const CLOSE_GRACE_MS = 2_000;

export interface UpstreamTls {
  readonly ca?: Buffer | string | undefined;
  readonly cert?: Buffer | string | undefined;
  readonly key?: Buffer | string | undefined;
  readonly servername?: string | undefined;
  readonly rejectUnauthorized: boolean;
}

export interface ConnectionAge {
  /** Milliseconds (0: never recycled). */
  readonly maxAgeMs: number;
  /** Each connection's age is stretched by a random fraction below this. */
  readonly jitter: number;
}

export type BackendState = 'healthy' | 'ejected' | 'removed';

/** A URL as given to --upstream or discovered, with an optional "#weight=N". */
export function parseBackendUrl(text: string): { origin: URL; weight: number } | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `not a URL: ${text}`;
  }
  if (url.protocol !== 'https:') return `only https:// apiservers are supported: ${text}`;
  let weight = 1;
  if (url.hash !== '') {
    const m = /^#weight=(\d+(?:\.\d+)?)$/.exec(url.hash);
    if (!m || Number(m[1]) <= 0) return `the only fragment understood is #weight=N with N > 0: ${text}`;
    weight = Number(m[1]);
  }
  return { origin: new URL(url.origin), weight };
}

export class Backend implements Candidate {
  readonly origin: URL;
  readonly key: string;
  readonly weight: number;
  readonly passthrough: Pool;
  readonly identity: Pool;
  readonly health = new BackendHealth();
  readonly outstanding: Record<RequestKind, number> = { short: 0, long: 0 };
  removed = false;
  #throttle = 0;
  #throttleAt = 0;
  readonly #tls: UpstreamTls;
  /** Called with the number of connections closed for their age. */
  onRecycle: (n: number) => void = () => {};

  constructor(origin: URL, weight: number, tls: UpstreamTls, age: ConnectionAge) {
    this.origin = origin;
    this.key = origin.origin;
    this.weight = weight;
    this.#tls = tls;
    const base = { ca: tls.ca, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized };
    const common = { bodyTimeout: 0, headersTimeout: 300_000, keepAliveTimeout: 30_000, connections: 256, clientTtl: age.maxAgeMs > 0 ? age.maxAgeMs : null };
    this.passthrough = this.#pool({ ...common, connect: base }, age);
    this.identity = this.#pool({ ...common, connect: { ...base, cert: tls.cert, key: tls.key } }, age);
  }

  #pool(options: Pool.Options, age: ConnectionAge): Pool {
    const pool = new Pool(this.origin, options);
    if (age.maxAgeMs <= 0) return pool;
    // undici's Pool (clientTtl) retires a connection once it is older than the TTL, counted from a
    // timestamp it stores on the connection when it connects. Moving that timestamp back by a
    // random part of the age draws each connection's own age, so that connections opened together
    // (after a restart) are not all retired together.
    const opened = new WeakMap<object, number>();
    pool.on('connect', (_origin, targets) => {
      for (const t of targets) {
        if (t === pool) continue;
        const shift = age.maxAgeMs * age.jitter * Math.random();
        const record = t as unknown as { ttl?: unknown };
        if (typeof record.ttl === 'number') record.ttl -= shift;
        opened.set(t, Date.now() - shift);
      }
    });
    pool.on('disconnect', (_origin, targets) => {
      let recycled = 0;
      for (const t of targets) {
        if (t === pool) continue;
        const at = opened.get(t);
        if (at !== undefined && Date.now() - at >= age.maxAgeMs) recycled++;
      }
      if (recycled > 0) this.onRecycle(recycled);
    });
    return pool;
  }

  get state(): BackendState {
    if (this.removed) return 'removed';
    return this.health.healthy ? 'healthy' : 'ejected';
  }

  /** Recent 429s, decayed to now (see balancer.ts). */
  get throttle(): number {
    return decayedThrottle(this.#throttle, this.#throttleAt, Date.now());
  }

  /** A 429 from this apiserver: it gets fewer requests for a while. */
  throttled(now = Date.now()): void {
    this.#throttle = decayedThrottle(this.#throttle, this.#throttleAt, now, true);
    this.#throttleAt = now;
  }

  /** TLS options for a raw connection (upgrades), with or without the proxy's client certificate. */
  connectOptions(withIdentity: boolean): ConnectionOptions {
    const t = this.#tls;
    const port = Number(this.origin.port || 443);
    const host = this.origin.hostname.replace(/^\[|\]$/g, '');
    return {
      host,
      port,
      ca: t.ca,
      servername: t.servername ?? (isIp(host) ? undefined : host),
      rejectUnauthorized: t.rejectUnauthorized,
      ALPNProtocols: ['http/1.1'],
      ...(withIdentity ? { cert: t.cert, key: t.key } : {}),
    };
  }

  /** Waits for every request in flight (a removed backend's watches end when their clients leave), then closes. */
  async closeWhenIdle(): Promise<void> {
    await Promise.all([this.passthrough.close(), this.identity.close()]);
  }

  /**
   * Shutdown: waits up to `graceMs` for requests in flight, then cuts what is left. An unbounded wait would let
   * one upstream request nobody aborted (a watch, a probe whose client left) hold shutdown forever.
   */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    const closed = Promise.all([this.passthrough.close(), this.identity.close()]).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), graceMs); });
    const inTime = await Promise.race([closed, late]);
    clearTimeout(timer);
    if (!inTime) {
      closed.catch(() => undefined);
      await this.destroy();
    }
  }

  async destroy(): Promise<void> {
    await Promise.all([this.passthrough.destroy(), this.identity.destroy()]);
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
