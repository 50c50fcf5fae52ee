// A Reflector keeps one resource's Store current: a paginated LIST, then WATCH with bookmarks.
// A watch that breaks is resumed from the same resourceVersion on another apiserver; 410/Expired
// from every apiserver → relist into a new Store swapped in whole, its differences sent on as events
// (relist-diff.ts); resume-policy.ts decides which and when. The resourceVersion only ever means
// "every event up to here is applied".
//
// Freshness: besides the main watch, which applies events, short progress watches let a quiet
// resource's RV keep up with the apiserver's (progress-watch.ts explains how). They also tell when
// the main watch has stalled, and whether the resource is in touch with the apiservers at all
// (watch-health.ts): a stalled watch is cut and resumed elsewhere, a stale store stops answering
// reads that take any state.
import type { Logger } from 'pino';
import type { Store } from './store.js';
import { storedObject, ObjectParseError, type StoredObject } from './stored-object.js';
import { watchEventObject } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { healthyBackendsOf, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { collectionPath, resourceName, type ResourceType } from './resource-type.js';
import { fieldSetFor, type FieldSet } from '../indexes/selectable-fields.js';
import type { ReflectorMetrics } from './metrics.js';
import type { RelistGap, StoreEvent } from './store-event.js';
import { ReflectorListeners } from './reflector-listeners.js';
import { watchEventType } from './watch-event-line.js';
import { sleep, watchWasHealthy } from './backoff.js';
import { ResumePolicy, type ResumeAction } from './resume-policy.js';
import { runMainWatch, watchFailureReason } from './main-watch.js';
import { WatchHealth, watchHealthOptions, type StallReason } from './watch-health.js';
import { ResourceVersionWaiters } from './rv-waiters.js';
import { listPages } from './paged-list.js';
import { fetchBookmarkSample } from './bookmark-sample.js';
import { PendingProgress, progressWatch, runProgressWatches } from './progress-watch.js';

export type { RelistGap, StoreEvent, WatchEventType } from './store-event.js';

export interface ReflectorOptions {
  readonly pageSize: number;
  readonly indexedFields: readonly string[];
  readonly bookmarkIntervalSeconds: number;
  /** Out of touch with the apiservers this long, the store stops answering reads that take any state. */
  readonly staleAfterMs: number;
  readonly log: Logger;
  readonly metrics: ReflectorMetrics;
  /** The LIST or WATCH was answered 404: the resource may no longer be served (a CRD deleted). */
  readonly onNotFound?: (() => void) | undefined;
}

export class Reflector {
  readonly type: ResourceType;
  readonly name: string;
  readonly #upstream: CacheUpstream;
  readonly #o: ReflectorOptions;
  readonly #fieldSet: FieldSet;
  readonly #stop = new AbortController();
  #store: Store | undefined;
  #rv = 0n;
  readonly #waiters = new ResourceVersionWaiters();
  readonly #progress = new PendingProgress();
  /** Bumped by every relist: progress from watches of an older store is dropped. */
  #generation = 0;
  #running: Promise<void> | undefined;
  /** The current main watch has delivered an event or a bookmark. */
  #watchDelivered = false;
  /** When the current main watch was answered with 200 (0: not yet). */
  #watchOpenedAt = 0;
  readonly #listeners = new ReflectorListeners();
  #firstListRV: bigint | undefined;
  readonly #health: WatchHealth;
  /** Cuts the open main watch as stalled (undefined while none is open). */
  #cutWatch: ((reason: StallReason) => void) | undefined;
  /** The apiserver that answered the current (or last) main watch. */
  #watchBackend: string | undefined;
  #stale = false;
  #ticker: NodeJS.Timeout | undefined;

  constructor(type: ResourceType, upstream: CacheUpstream, o: ReflectorOptions) {
    this.type = type;
    this.name = resourceName(type);
    this.#upstream = upstream;
    this.#o = o;
    this.#fieldSet = fieldSetFor(type.group, type.resource, type.namespaced);
    this.#health = new WatchHealth(watchHealthOptions(o.staleAfterMs, o.bookmarkIntervalSeconds * 1000));
  }

  get fieldSet(): FieldSet {
    return this.#fieldSet;
  }

  /** The current store, once the first LIST completed; undefined before. */
  get store(): Store | undefined {
    return this.#store;
  }

  get synced(): boolean {
    return this.#store !== undefined;
  }

  get resourceVersion(): bigint {
    return this.#rv;
  }

  /** The resourceVersion of the first LIST: every event after it went through onEvent listeners. */
  get firstListResourceVersion(): bigint | undefined {
    return this.#firstListRV;
  }

  /**
   * Out of touch with the apiservers for longer than staleAfterMs and not caught up since
   * (watch-health.ts): the store may miss changes, and must not answer reads that take any state.
   */
  get stale(): boolean {
    this.#checkHealth();
    return this.#stale;
  }

  /** How long the resource has been out of touch with the apiservers (0 while in touch). */
  get outOfTouchMs(): number {
    return this.#health.outOfTouchMs(Date.now());
  }

  /** Called when the resource becomes stale, and when it has caught up again. */
  onStale(listener: (stale: boolean) => void): void {
    this.#listeners.onStale(listener);
  }

  start(): void {
    this.#ticker ??= setInterval(() => this.#checkHealth(), 1000);
    this.#ticker.unref();
    this.#running ??= Promise.all([this.#run(), this.#progressLoop()]).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#ticker);
    this.#waiters.cancelAll();
    await this.#running;
  }

  /** Cuts a stalled main watch, and notes when the resource goes stale or has caught up. */
  #checkHealth(): void {
    const now = Date.now();
    const stall = this.#health.stall(now);
    if (stall && this.#cutWatch) {
      this.#o.log.warn({ resource: this.name, backend: this.#watchBackend, reason: stall, rv: this.#rv.toString() }, 'main watch stalled: resuming elsewhere');
      this.#cutWatch(stall);
      this.#cutWatch = undefined;
    }
    if (!this.#store) return;
    const stale = this.#health.stale(now);
    if (stale === this.#stale) return;
    this.#stale = stale;
    this.#o.metrics.stale(this.name, stale);
    if (stale) this.#o.log.warn({ resource: this.name, outOfTouchMs: this.#health.outOfTouchMs(now), refusedWith: this.#health.refusedWith, rv: this.#rv.toString() }, 'out of touch with the apiservers: not serving reads of any state from the cache');
    else this.#o.log.info({ resource: this.name, rv: this.#rv.toString() }, 'caught up with the apiservers: serving from the cache again');
    this.#listeners.stale(stale);
  }

  /**
   * The proxy's own LIST or watch was answered 401/403: repeated, the resource is out of touch
   * (watch-health.ts) even while an older main watch still delivers events.
   */
  #refused(code: number): void {
    this.#health.refused(Date.now(), code);
    this.#checkHealth();
  }

  /** A LIST or watch the apiserver answered with an error: 404 (a CRD gone) and 401/403 matter here. */
  #statusError(err: unknown): void {
    if (!(err instanceof UpstreamStatusError)) return;
    if (err.statusCode === 404) this.#o.onNotFound?.();
    if (err.statusCode === 401 || err.statusCode === 403) this.#refused(err.statusCode);
  }

  /** 401 or 403 while the apiservers keep refusing the proxy's own LISTs and watches of this resource. */
  get refusedWith(): number | undefined {
    return this.#health.refusedWith;
  }

  onEvent(listener: (e: StoreEvent) => void): () => void {
    return this.#listeners.onEvent(listener);
  }

  /** A relist sent deletions at resourceVersions of its own (called before those events). */
  onRelistGap(listener: (gap: RelistGap) => void): void {
    this.#listeners.onRelistGap(listener);
  }

  /** The object of a BOOKMARK the apiserver sent (its JSON depends on the type), once. */
  onBookmarkSample(listener: (object: Buffer) => void): void {
    this.#listeners.onBookmarkSample(listener);
  }

  /** Resolves true once the store is synced at `rv` or later, false after `timeoutMs`. */
  waitFor(rv: bigint, timeoutMs: number): Promise<boolean> {
    if (this.#store && this.#rv >= rv) return Promise.resolve(true);
    if (timeoutMs <= 0 || this.#stop.signal.aborted) return Promise.resolve(false);
    return this.#waiters.wait(rv, timeoutMs);
  }

  #advance(rv: bigint): void {
    if (rv <= this.#rv) return;
    rv = this.#progress.settle(rv);
    this.#rv = rv;
    this.#health.applied(rv);
    this.#o.metrics.resourceVersion(this.name, rv);
    if (!this.#store) return;
    this.#waiters.release(rv);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    const policy = new ResumePolicy();
    let next: ResumeAction = { kind: 'relist', reason: 'initial', delayMs: 0 };
    while (!signal.aborted) {
      if (next.delayMs > 0) await sleep(next.delayMs, signal);
      if (signal.aborted) break;
      if (next.kind === 'relist') {
        try {
          await this.#list(next.reason, signal);
          policy.listed();
          next = { kind: 'watch', avoid: new Set(), delayMs: 0 };
          if (!this.#listeners.bookmarkSampled) void fetchBookmarkSample(this.#upstream, collectionPath(this.type), this.#rv, signal, this.#o.log, this.name, (o) => this.#listeners.bookmark(o));
        } catch (err) {
          if (signal.aborted) break;
          this.#statusError(err);
          const delayMs = policy.listFailed();
          this.#o.log.warn({ resource: this.name, err: String(err), retryInMs: Math.round(delayMs) }, 'list failed');
          next = { ...next, delayMs };
        }
        continue;
      }
      try {
        await this.#watch(signal, next.avoid);
        if (signal.aborted) break;
        if (watchWasHealthy(this.#watchDelivered, this.#watchOpenedAt)) {
          policy.healthy();
          next = policy.ended();
        } else {
          // Ended at once without error (an apiserver shutting down): not a healthy watch.
          this.#o.metrics.watchRestart(this.name, 'closed');
          next = policy.failed(this.#watchBackend);
        }
      } catch (err) {
        if (signal.aborted) break;
        if (watchWasHealthy(this.#watchDelivered, this.#watchOpenedAt)) policy.healthy();
        next = this.#afterFailure(err, policy);
      }
    }
  }

  /** The main watch failed: count it, say so, and decide what comes next. */
  #afterFailure(err: unknown, policy: ResumePolicy): ResumeAction {
    const backend = this.#watchBackend;
    const rv = this.#rv.toString();
    if (err instanceof UpstreamStatusError && err.expired) {
      this.#o.metrics.watchRestart(this.name, 'expired');
      const next = policy.expired(backend, healthyBackendsOf(this.#upstream));
      if (next.kind === 'watch') this.#o.log.info({ resource: this.name, rv, backend, avoid: [...next.avoid] }, 'watch expired: trying the other apiservers before relisting');
      else this.#o.log.info({ resource: this.name, rv, backend, retryInMs: Math.round(next.delayMs) }, 'watch expired everywhere: relisting');
      return next;
    }
    const reason = watchFailureReason(err);
    this.#o.metrics.watchRestart(this.name, reason);
    this.#statusError(err);
    const next = policy.failed(backend, reason === 'parse' ? 'parse_error' : undefined);
    this.#o.log.warn({ resource: this.name, rv, backend, reason, err: String(err), retryInMs: Math.round(next.delayMs) }, next.kind === 'relist' ? 'watch failed: relisting' : 'watch failed: resuming');
    return next;
  }

  async #list(reason: string, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const { store, rv } = await listPages(this.#upstream, this.type, this.#fieldSet, this.#o, signal);
    this.#health.listed(Date.now());
    const previous = this.#store;
    const previousRV = this.#rv;
    this.#store = store;
    this.#generation++;
    this.#progress.clear();
    this.#rv = 0n;
    this.#firstListRV ??= rv;
    this.#advance(rv);
    this.#o.metrics.relist(this.name, reason);
    this.#o.metrics.store(this.name, store.size, store.bytes);
    this.#o.log.info({ resource: this.name, objects: store.size, bytes: store.bytes, rv: rv.toString(), ms: Date.now() - started, reason }, 'listed');
    if (previous) this.#listeners.relisted(previous, store, previousRV, this.#rv);
  }

  /** The main watch from the current RV; returns when the apiserver ends it (timeoutSeconds). */
  async #watch(stopSignal: AbortSignal, avoid: ReadonlySet<string>): Promise<void> {
    this.#watchDelivered = false;
    this.#watchOpenedAt = 0;
    this.#watchBackend = undefined;
    const timeout = 240 + Math.floor(Math.random() * 120);
    const q = `watch=1&allowWatchBookmarks=true&resourceVersion=${this.#rv}&timeoutSeconds=${timeout}`;
    try {
      await runMainWatch({
        upstream: this.#upstream, path: `${collectionPath(this.type)}?${q}`, avoid, stopSignal,
        onBackend: (backend) => {
          this.#watchBackend = backend;
        },
        onOpen: (_backend, cut) => {
          this.#watchOpenedAt = Date.now();
          this.#health.opened(this.#watchOpenedAt);
          this.#cutWatch = cut;
        },
        onBytes: () => this.#health.bytes(Date.now()),
        onLine: (line) => this.#handleLine(line),
      });
    } finally {
      this.#cutWatch = undefined;
      this.#health.closed(Date.now());
      this.#checkHealth();
    }
  }

  /** Opens a progress watch every bookmark interval while synced (see progress-watch.ts). */
  #progressLoop(): Promise<void> {
    return runProgressWatches({
      intervalMs: this.#o.bookmarkIntervalSeconds * 1000,
      signal: this.#stop.signal,
      ready: () => this.#store !== undefined,
      watch: (signal) => this.#progressWatch(signal),
      onError: (err) => this.#o.log.debug({ resource: this.name, err: String(err) }, 'progress watch failed'),
    });
  }

  #progressWatch(stopSignal: AbortSignal): Promise<void> {
    const generation = this.#generation;
    // What a progress watch saw, as evidence: events the main watch has not applied (yet: or it
    // has stalled), or none, which proves the store current.
    const saw = (last: bigint): boolean => {
      if (generation !== this.#generation) return false;
      if (last > this.#rv) {
        this.#health.behind(Date.now(), last);
        return false;
      }
      this.#health.current(Date.now());
      return true;
    };
    return progressWatch(this.#upstream, collectionPath(this.type), this.#rv, stopSignal, {
      onOpen: () => this.#health.accepted(Date.now()),
      onRefused: (code) => this.#refused(code),
      onQuietEnd: (last) => void saw(last),
      onBookmark: (last, rv) => {
        if (generation !== this.#generation) return;
        if (!saw(last)) {
          if (rv > this.#rv) this.#progress.add(last, rv);
          return;
        }
        if (rv <= this.#rv) return;
        this.#o.metrics.bookmark(this.name);
        this.#advance(rv);
      },
    });
  }

  #handleLine(line: Buffer): void {
    const type = watchEventType(line);
    const objBytes = watchEventObject(line);
    const store = this.#store;
    if (!store) throw new Error('watch without a store');
    switch (type) {
      case 'BOOKMARK': {
        this.#watchDelivered = true;
        this.#health.current(Date.now());
        this.#listeners.bookmark(objBytes);
        const o: unknown = JSON.parse(objBytes.toString('utf8'));
        const meta = typeof o === 'object' && o !== null && 'metadata' in o ? o.metadata : undefined;
        const rv = parseResourceVersion(typeof meta === 'object' && meta !== null && 'resourceVersion' in meta ? meta.resourceVersion : undefined);
        if (rv !== undefined && rv > this.#rv) {
          this.#o.metrics.bookmark(this.name);
          this.#advance(rv);
        }
        return;
      }
      case 'ERROR':
        throw UpstreamStatusError.fromStatus(500, objBytes);
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const obj = storedObject(objBytes, this.#fieldSet, this.type.namespaced, store.arena);
        this.#watchDelivered = true;
        this.#health.heard(Date.now());
        if (obj.resourceVersion <= this.#rv) return;
        let previous: StoredObject | undefined;
        if (type === 'DELETED') previous = store.delete(obj.key);
        else previous = store.upsert(obj);
        this.#advance(obj.resourceVersion);
        this.#o.metrics.store(this.name, store.size, store.bytes);
        this.#listeners.event({ type, object: obj, previous, resourceVersion: obj.resourceVersion });
        return;
      }
      default:
        throw new ObjectParseError(`unknown watch event type ${JSON.stringify(type)}`);
    }
  }
}
