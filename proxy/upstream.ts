// The apiservers the proxy forwards to, as one set: which one gets each request (balancer.ts),
// which are healthy (backend-health.ts, with active /readyz checks here), failover of requests
// that provably did not get an answer, and incremental changes (discovery) that leave the
// connections of unchanged apiservers alone.
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { Backend, type ConnectionAge, type UpstreamTls } from './backend.js';
import { Balancer, type RequestKind } from './balancer.js';
import { EJECTED_CHECK_MS, type EjectionReason, type Outcome } from './backend-health.js';
import type { BackendMetrics } from './backend-metrics.js';
import type { BalancePolicy } from './options.js';
import { upstreamErrorReason } from './upstream-errors.js';

export type { UpstreamTls } from './backend.js';
export { Backend } from './backend.js';

export interface ProxyCredentials {
  /** The proxy's own Authorization header value, if its kubeconfig has a token. */
  authorization(): string | undefined;
  /** Who the proxy's client certificate authenticates as, when that certificate is its only credential. */
  certificateIdentity?(): { readonly user: string; readonly groups: readonly string[] } | undefined;
}

export interface BackendSetOptions {
  readonly balance: BalancePolicy;
  readonly healthIntervalMs: number;
  readonly connectionAge: ConnectionAge;
  readonly tls: UpstreamTls;
  readonly credentials: ProxyCredentials;
  readonly log: Logger;
  readonly metrics: BackendMetrics;
}

export interface BackendUrl {
  readonly origin: URL;
  readonly weight: number;
}

/**
 * When a failed request may be sent to another apiserver: `idempotent` (GET, LIST, WATCH
 * establishment) after any failure before a response, and past a 429 while another apiserver has
 * not refused it yet; `unsent` (writes) only when the connection was never made, so that nothing
 * of the request can have reached the apiserver.
 */
export type RetryPolicy = 'idempotent' | 'unsent';

export interface UpstreamCall {
  /** Through the proxy's own client certificate (impersonation, the cache) or without one. */
  readonly identity: boolean;
  readonly kind: RequestKind;
  readonly retry: RetryPolicy;
  /** Apiservers (origins) to avoid while another usable one has not been tried. */
  readonly avoid?: ReadonlySet<string> | undefined;
  /** The request (without origin) for the apiserver chosen. */
  readonly request: Omit<Dispatcher.RequestOptions, 'origin'>;
  /** False once the request can no longer be sent again (its body was read). */
  readonly resendable?: () => boolean;
}

export interface UpstreamAnswer {
  readonly backend: Backend;
  readonly response: Dispatcher.ResponseData;
}

/** No apiserver gave an answer; `cause` is the last error, `backend` the last tried. */
export class UpstreamFailure extends Error {
  override readonly name = 'UpstreamFailure';
  readonly backend: Backend;
  override readonly cause: unknown;
  readonly reason: string;
  constructor(backend: Backend, cause: unknown) {
    super(`apiserver ${backend.origin.host}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.backend = backend;
    this.cause = cause;
    this.reason = upstreamErrorReason(cause);
  }
}

/** Errors that prove the connection was never made: nothing was sent. */
const UNSENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Errors before any response byte after which an idempotent request may go elsewhere. */
const RETRYABLE = new Set([...UNSENT, 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'ETIMEDOUT']);
/** At most this many apiservers are tried for one request. */
const MAX_ATTEMPTS = 5;

function errorCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
}

function outcomeOf(statusCode: number): Outcome {
  if (statusCode === 429) return 'throttled';
  if (statusCode === 500 || statusCode === 502 || statusCode === 503 || statusCode === 504) return 'server_error';
  return 'ok';
}

export class BackendSet {
  readonly credentials: ProxyCredentials;
  readonly #o: BackendSetOptions;
  readonly #balancer: Balancer;
  #backends: Backend[] = [];
  readonly #nextCheck = new Map<Backend, number>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(urls: readonly BackendUrl[], o: BackendSetOptions) {
    if (urls.length === 0) throw new Error('no upstream apiserver configured');
    this.#o = o;
    this.credentials = o.credentials;
    this.#balancer = new Balancer(o.balance);
    this.update(urls);
  }

  /** The apiservers in the set (not those removed and still finishing requests). */
  get backends(): readonly Backend[] {
    return this.#backends;
  }

  /** Applies a new list: new apiservers are added, missing ones drained and closed, others untouched. */
  update(urls: readonly BackendUrl[]): void {
    if (urls.length === 0) return;
    const wanted = new Map(urls.map((u) => [u.origin.origin, u]));
    const kept: Backend[] = [];
    for (const b of this.#backends) {
      const u = wanted.get(b.key);
      if (u && u.weight === b.weight) {
        kept.push(b);
        wanted.delete(b.key);
        continue;
      }
      b.removed = true;
      this.#balancer.forget(b.key);
      this.#nextCheck.delete(b);
      this.#o.metrics.removed(b.origin.host);
      this.#o.log.info({ upstream: b.origin.host }, 'apiserver left the set: finishing its requests, then closing');
      void b.closeWhenIdle().catch(() => undefined);
    }
    for (const u of wanted.values()) {
      const b = new Backend(u.origin, u.weight, this.#o.tls, this.#o.connectionAge);
      b.onRecycle = (n) => this.#o.metrics.recycled('upstream_connection_max_age', n);
      kept.push(b);
      this.#nextCheck.set(b, 0);
      if (this.#backends.length > 0) this.#o.log.info({ upstream: b.origin.host }, 'apiserver joined the set');
    }
    this.#backends = kept;
  }

  /** Starts the active health checks. */
  start(): void {
    if (this.#timer || this.#closed) return;
    const tick = () => {
      this.#checkDue();
      this.#timer = setTimeout(tick, 250);
      this.#timer.unref();
    };
    tick();
  }

  /**
   * The apiserver for the next request of this kind: a healthy one not in `exclude` if there is
   * one; else an ejected one not in `exclude` (better a try than a refusal when every health
   * check fails); undefined when every apiserver is excluded.
   */
  pick(kind: RequestKind, exclude?: ReadonlySet<string>, healthyOnly = false): Backend | undefined {
    const open = exclude && exclude.size > 0 ? this.#backends.filter((b) => !exclude.has(b.key)) : this.#backends;
    const healthy = open.filter((b) => b.health.healthy);
    const pool = healthy.length > 0 || healthyOnly ? healthy : open;
    const c = this.#balancer.pick(pool, kind);
    return pool.find((b) => b === c);
  }

  /** Counts a request made outside request() (an upgrade's own connection) until the returned release. */
  hold(b: Backend, kind: RequestKind): () => void {
    b.outstanding[kind]++;
    this.#o.metrics.inflight(b.origin.host, kind, 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      b.outstanding[kind]--;
      if (!b.removed) this.#o.metrics.inflight(b.origin.host, kind, -1);
    };
  }

  /** The usable apiservers' origins. */
  healthy(): string[] {
    return this.#backends.filter((b) => b.health.healthy).map((b) => b.key);
  }

  /**
   * Sends a request to the apiserver the balancer picks, and to others after failures its retry
   * policy allows. Resolves with the first answer that is not a 429 passed over (a 429 is the
   * answer when every apiserver tried refused); rejects with UpstreamFailure when none answered.
   * The apiserver's count of requests in flight holds until the response body is done.
   */
  async request(call: UpstreamCall): Promise<UpstreamAnswer> {
    const tried = new Set<string>();
    const avoid = call.avoid ?? new Set<string>();
    const attempts = Math.min(MAX_ATTEMPTS, Math.max(1, this.#backends.length));
    let lastThrottled: UpstreamAnswer | undefined;
    let lastFailure: UpstreamFailure | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const b = (avoid.size > 0 ? this.pick(call.kind, new Set([...tried, ...avoid]), true) : undefined) ?? this.pick(call.kind, tried);
      if (!b) break;
      tried.add(b.key);
      const kind = call.kind;
      b.outstanding[kind]++;
      this.#o.metrics.inflight(b.origin.host, kind, 1);
      let done = false;
      const release = () => {
        if (done) return;
        done = true;
        b.outstanding[kind]--;
        // A removed apiserver's series are gone: its last requests do not bring them back.
        if (!b.removed) this.#o.metrics.inflight(b.origin.host, kind, -1);
      };
      let response: Dispatcher.ResponseData;
      try {
        response = await (call.identity ? b.identity : b.passthrough).request({ ...call.request, origin: b.origin });
      } catch (err) {
        release();
        const signal = call.request.signal;
        if (signal instanceof AbortSignal && signal.aborted) throw new UpstreamFailure(b, err);
        const code = errorCode(err);
        const failure = new UpstreamFailure(b, err);
        if (!b.removed) this.#o.metrics.error(b.origin.host, failure.reason);
        if (failure.reason !== 'client_body') this.#recordOutcome(b, code === 'ECONNREFUSED' ? 'connection_refused' : 'connection_error');
        const again = (call.retry === 'idempotent' ? RETRYABLE : UNSENT).has(code) && (call.resendable?.() ?? true);
        if (!again) throw failure;
        lastFailure = failure;
        this.#o.metrics.failover(failure.reason);
        this.#o.log.debug({ upstream: b.origin.host, reason: failure.reason }, 'request failed before an answer: trying another apiserver');
        continue;
      }
      response.body.once('close', release);
      if (!b.removed) this.#o.metrics.answered(b.origin.host, response.statusCode);
      this.#recordOutcome(b, outcomeOf(response.statusCode));
      if (response.statusCode === 429) b.throttled();
      const mayPassOver = response.statusCode === 429 && call.retry === 'idempotent' && (call.resendable?.() ?? true) &&
        attempt + 1 < attempts && this.pick(call.kind, tried) !== undefined;
      // Destroyed unread, undici's body emits an AbortError: without a listener it would crash the process.
      lastThrottled?.response.body.on('error', () => undefined).destroy();
      if (!mayPassOver) return { backend: b, response };
      lastThrottled = { backend: b, response };
      this.#o.metrics.failover('throttled');
    }
    if (lastThrottled) return lastThrottled;
    if (lastFailure) throw lastFailure;
    throw new Error('no upstream apiserver configured');
  }

  #recordOutcome(b: Backend, outcome: Outcome): void {
    const ejected = b.health.record(Date.now(), outcome);
    if (ejected) this.#ejected(b, ejected);
  }

  #ejected(b: Backend, reason: EjectionReason): void {
    this.#o.metrics.ejected(b.origin.host, reason);
    this.#o.log.warn({ upstream: b.origin.host, reason }, 'apiserver ejected');
    this.#nextCheck.set(b, Date.now() + EJECTED_CHECK_MS);
  }

  #checkDue(): void {
    const now = Date.now();
    // With one apiserver there is no other to send requests to: it is checked only while ejected,
    // to bring it back, not polled for nothing.
    const alone = this.#backends.length === 1;
    for (const b of this.#backends) {
      const due = this.#nextCheck.get(b) ?? 0;
      if (due > now || (alone && b.health.healthy)) continue;
      // Not again until this check is done (a blackholed apiserver takes its whole timeout).
      this.#nextCheck.set(b, Infinity);
      void this.#check(b);
    }
    for (const b of this.#backends) this.#o.metrics.health(b.origin.host, b.health.healthy);
  }

  async #check(b: Backend): Promise<void> {
    let ok = false;
    try {
      const headers: Record<string, string> = { 'user-agent': 'kube-cache-proxy/health' };
      const auth = this.credentials.authorization();
      if (auth) headers['authorization'] = auth;
      const res = await b.identity.request({ origin: b.origin, path: '/readyz', method: 'GET', headers, signal: AbortSignal.timeout(Math.max(1000, Math.min(5000, this.#o.healthIntervalMs))) });
      await res.body.dump().catch(() => undefined);
      ok = res.statusCode === 200;
    } catch {
      ok = false;
    }
    if (b.removed || this.#closed) return;
    const now = Date.now();
    const change = b.health.check(now, ok);
    if (change === 'readyz') this.#ejected(b, 'readyz');
    if (change === 'readmitted') {
      this.#o.metrics.readmitted(b.origin.host);
      this.#o.log.info({ upstream: b.origin.host }, 'apiserver re-admitted');
    }
    this.#nextCheck.set(b, now + (b.health.healthy ? this.#o.healthIntervalMs : EJECTED_CHECK_MS));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await Promise.all(this.#backends.map((b) => b.close()));
  }
}

/** The name the request handlers know the set by. */
export type UpstreamSet = BackendSet;
