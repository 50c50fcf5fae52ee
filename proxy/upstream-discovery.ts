// Finds the apiservers from the `kubernetes` Service's EndpointSlices in `default` (what each
// apiserver's endpoint reconciler keeps up to date) and follows them live: LIST, then WATCH from the
// list's resourceVersion, with the proxy's own credentials on whichever apiserver the balancer picks.
// After every change the URLs of the ready endpoints are computed again, and the caller hears of
// them only when the set changed and is not empty: during a control-plane hiccup the reconciler can
// briefly leave the slice empty (or it can be deleted), and that must not take every backend away.
import type { Logger } from 'pino';
import { isIP } from 'node:net';
import { readBody, UpstreamStatusError, type CacheUpstream } from '../cache/upstream.js';
import { backoffDelayMs, sleep, watchWasHealthy } from '../cache/backoff.js';
import { LineSplitter } from '../cache/line-splitter.js';

export interface UpstreamDiscoveryOptions {
  readonly upstream: CacheUpstream;
  readonly log: Logger;
  /** The new set of apiserver URLs (https, sorted, never empty); called only when it changed. */
  onChange(urls: readonly URL[]): void;
}

export interface UpstreamDiscovery {
  stop(): Promise<void>;
}

const SLICES_PATH = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices';
const SELECTOR = 'labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes';
/** A list of a few slices: anything near this is not what the apiserver writes. */
const LIST_LIMIT_BYTES = 16 * 1024 * 1024;

type Rec = Record<string, unknown>;

function rec(v: unknown): Rec | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The port the apiservers serve on: the one named "https", or the slice's only port. */
function slicePort(slice: Rec): number | undefined {
  const ports = Array.isArray(slice['ports']) ? slice['ports'].map(rec).filter((p): p is Rec => p !== undefined) : [];
  const chosen = ports.find((p) => p['name'] === 'https') ?? (ports.length === 1 ? ports[0] : undefined);
  const port = chosen?.['port'];
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

/**
 * The origins (`https://host:port`) of a slice's ready endpoints: `conditions.ready` unset counts as
 * ready (the API's "unknown, treat as ready"); IPv6 addresses in brackets; FQDN slices are skipped
 * (the reconciler writes IPv4 or IPv6 only).
 */
export function endpointSliceOrigins(slice: unknown): string[] {
  const s = rec(slice);
  if (!s) return [];
  const type = s['addressType'];
  if (type !== 'IPv4' && type !== 'IPv6') return [];
  const port = slicePort(s);
  if (port === undefined) return [];
  const out: string[] = [];
  for (const e of Array.isArray(s['endpoints']) ? s['endpoints'] : []) {
    const ep = rec(e);
    if (!ep || rec(ep['conditions'])?.['ready'] === false) continue;
    for (const a of Array.isArray(ep['addresses']) ? ep['addresses'] : []) {
      const family = typeof a === 'string' ? isIP(a) : 0;
      if (family === 4 && type === 'IPv4') out.push(`https://${String(a)}:${port}`);
      else if (family === 6 && type === 'IPv6') out.push(`https://[${String(a)}]:${port}`);
    }
  }
  return out;
}

/** Every slice's ready origins, deduplicated and sorted. */
export function discoveredOrigins(slices: Iterable<unknown>): string[] {
  const all = new Set<string>();
  for (const s of slices) for (const o of endpointSliceOrigins(s)) all.add(o);
  return [...all].sort();
}

function sliceName(o: unknown): string | undefined {
  return str(rec(rec(o)?.['metadata'])?.['name']);
}

function resourceVersionOf(o: unknown): string | undefined {
  return str(rec(rec(o)?.['metadata'])?.['resourceVersion']);
}

/** A watch that ended in an ERROR event, or a LIST/WATCH answered with an error status. */
function statusError(status: unknown, fallbackCode: number): UpstreamStatusError {
  const s = rec(status);
  const code = typeof s?.['code'] === 'number' ? s['code'] : fallbackCode;
  return new UpstreamStatusError(code, str(s?.['reason']) ?? '', str(s?.['message']) ?? `status ${code}`);
}

export function startUpstreamDiscovery(o: UpstreamDiscoveryOptions): UpstreamDiscovery {
  const stopper = new AbortController();
  const running = new Discovery(o, stopper.signal).run();
  return {
    async stop() {
      stopper.abort();
      await running;
    },
  };
}

class Discovery {
  readonly #o: UpstreamDiscoveryOptions;
  readonly #signal: AbortSignal;
  /** The current slices by name, as the apiserver sent them. */
  #slices = new Map<string, unknown>();
  /** Where the next watch starts; undefined: list first. */
  #rv: string | undefined;
  /** The set last given to onChange (sorted, joined). */
  #applied = '';
  #warnedEmpty = false;
  #watchDelivered = false;
  #watchOpenedAt = 0;
  /** The apiserver the current watch is on. */
  #watchBackend: string | undefined;
  /** The apiserver whose watch just failed: the next requests go elsewhere while another is healthy. */
  #avoid: ReadonlySet<string> | undefined;

  constructor(o: UpstreamDiscoveryOptions, signal: AbortSignal) {
    this.#o = o;
    this.#signal = signal;
  }

  async run(): Promise<void> {
    let failures = 0;
    /** 410s with no healthy watch between them: the second one in a row backs off like any failure. */
    let expiredInRow = 0;
    while (!this.#signal.aborted) {
      this.#watchDelivered = false;
      this.#watchOpenedAt = 0;
      this.#watchBackend = undefined;
      try {
        if (this.#rv === undefined) await this.#list();
        await this.#watch();
        failures = 0;
        expiredInRow = 0;
        this.#avoid = undefined;
      } catch (err) {
        if (this.#signal.aborted) break;
        this.#avoid = this.#watchBackend === undefined ? undefined : new Set([this.#watchBackend]);
        const healthy = watchWasHealthy(this.#watchDelivered, this.#watchOpenedAt);
        if (healthy) expiredInRow = 0;
        if (err instanceof UpstreamStatusError && err.expired) {
          this.#o.log.info({ resourceVersion: this.#rv }, 'upstream discovery: watch expired, listing the kubernetes EndpointSlices again');
          this.#rv = undefined;
          if (++expiredInRow === 1) continue;
        }
        failures = healthy ? 1 : failures + 1;
        const delay = backoffDelayMs(failures);
        this.#o.log.warn({ err: err instanceof Error ? err.message : String(err), failures, retryInMs: Math.round(delay) },
          this.#rv === undefined ? 'upstream discovery: listing the kubernetes EndpointSlices failed' : 'upstream discovery: watching the kubernetes EndpointSlices failed');
        await sleep(delay, this.#signal);
      }
    }
  }

  async #list(): Promise<void> {
    const reply = await this.#o.upstream.get(`${SLICES_PATH}?${SELECTOR}`, this.#signal, { avoid: this.#avoid });
    const body = await readBody(reply.body, LIST_LIMIT_BYTES);
    if (reply.statusCode !== 200) throw UpstreamStatusError.fromStatus(reply.statusCode, body);
    const list: unknown = JSON.parse(body.toString('utf8'));
    const rv = resourceVersionOf(list);
    const items = rec(list)?.['items'];
    if (rv === undefined || !(Array.isArray(items) || items === null)) throw new Error('the EndpointSlice list has no resourceVersion or items');
    const slices = new Map<string, unknown>();
    for (const item of items ?? []) {
      const name = sliceName(item);
      if (name !== undefined) slices.set(name, item);
    }
    this.#slices = slices;
    this.#rv = rv;
    this.#publish();
  }

  /** One watch from #rv; returns when the apiserver ends it (its timeout), throws on an error. */
  async #watch(): Promise<void> {
    // Like client-go's reflector: a timeout between 5 and 10 minutes, so watches spread over the
    // apiservers as they come and go instead of staying on one forever.
    const timeout = 300 + Math.floor(Math.random() * 300);
    const q = `${SELECTOR}&watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(this.#rv ?? '')}&timeoutSeconds=${timeout}`;
    const reply = await this.#o.upstream.get(`${SLICES_PATH}?${q}`, this.#signal, { longRunning: true, avoid: this.#avoid });
    this.#watchBackend = reply.backend;
    if (reply.statusCode !== 200) throw UpstreamStatusError.fromStatus(reply.statusCode, await readBody(reply.body, 64 * 1024));
    this.#watchOpenedAt = Date.now();
    const lines = new LineSplitter();
    try {
      for await (const chunk of reply.body) {
        for (const line of lines.push(chunk as Buffer)) this.#event(JSON.parse(line.toString('utf8')) as unknown, reply.statusCode);
      }
    } finally {
      reply.body.destroy();
    }
    // An apiserver that ends every watch at once must not make this loop spin.
    if (!watchWasHealthy(this.#watchDelivered, this.#watchOpenedAt)) throw new Error('the watch ended at once');
  }

  #event(e: unknown, code: number): void {
    const ev = rec(e);
    const type = ev?.['type'];
    const object = ev?.['object'];
    if (type === 'ERROR') throw statusError(object, code);
    const rv = resourceVersionOf(object);
    if (rv === undefined) throw new Error(`watch event ${String(type)} without a resourceVersion`);
    this.#watchDelivered = true;
    if (type === 'BOOKMARK') {
      this.#rv = rv;
      return;
    }
    const name = sliceName(object);
    if (name === undefined) throw new Error(`watch event ${String(type)} without a name`);
    if (type === 'ADDED' || type === 'MODIFIED') this.#slices.set(name, object);
    else if (type === 'DELETED') this.#slices.delete(name);
    else throw new Error(`unknown watch event type ${String(type)}`);
    this.#rv = rv;
    this.#publish();
  }

  #publish(): void {
    const origins = discoveredOrigins(this.#slices.values());
    if (origins.length === 0) {
      // Keep the last set: an empty slice is what a control-plane hiccup looks like, not "no apiservers".
      if (!this.#warnedEmpty) {
        this.#o.log.warn({ slices: this.#slices.size, kept: this.#applied ? this.#applied.split(' ') : [] },
          'upstream discovery: the kubernetes EndpointSlices list no ready apiserver; keeping the last set');
      }
      this.#warnedEmpty = true;
      return;
    }
    this.#warnedEmpty = false;
    const key = origins.join(' ');
    if (key === this.#applied) return;
    this.#applied = key;
    this.#o.log.info({ upstreams: origins }, 'upstream discovery: apiservers changed');
    try {
      this.#o.onChange(origins.map((u) => new URL(u)));
    } catch (err) {
      this.#o.log.error({ err: err instanceof Error ? err.message : String(err) }, 'upstream discovery: applying the new apiservers failed');
    }
  }
}
