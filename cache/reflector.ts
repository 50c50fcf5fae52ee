// A Reflector keeps one resource's Store current: a paginated LIST, then WATCH with bookmarks.
// 410/Expired → relist into a new Store swapped in whole, its differences sent on as events
// (relist-diff.ts); other errors → capped exponential backoff with jitter (backoff.ts). The
// resourceVersion only ever means "every event up to here is applied".
//
// Freshness: besides the main watch, which applies events, short progress watches let a quiet
// resource's RV keep up with the apiserver's (progress-watch.ts explains how).
import type { Logger } from 'pino';
import type { Store } from './store.js';
import { storedObject, ObjectParseError, type StoredObject } from './stored-object.js';
import { watchEventObject } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { readBody, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { collectionPath, resourceName, type ResourceType } from './resource-type.js';
import { fieldSetFor, type FieldSet } from '../indexes/selectable-fields.js';
import { LineSplitter } from './line-splitter.js';
import type { ReflectorMetrics } from './metrics.js';
import type { RelistGap, StoreEvent } from './store-event.js';
import { relistDiff } from './relist-diff.js';
import { watchEventType } from './watch-event-line.js';
import { backoffDelayMs, sleep, watchWasHealthy } from './backoff.js';
import { ResourceVersionWaiters } from './rv-waiters.js';
import { listPages } from './paged-list.js';
import { fetchBookmarkSample } from './bookmark-sample.js';
import { PendingProgress, progressWatch, runProgressWatches } from './progress-watch.js';

export type { RelistGap, StoreEvent, WatchEventType } from './store-event.js';

export interface ReflectorOptions {
  readonly pageSize: number;
  readonly indexedFields: readonly string[];
  readonly bookmarkIntervalSeconds: number;
  readonly log: Logger;
  readonly metrics: ReflectorMetrics;
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
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  readonly #bookmarkListeners = new Set<(object: Buffer) => void>();
  readonly #relistListeners = new Set<(gap: RelistGap) => void>();
  #bookmarkSampled = false;
  #firstListRV: bigint | undefined;

  constructor(type: ResourceType, upstream: CacheUpstream, o: ReflectorOptions) {
    this.type = type;
    this.name = resourceName(type);
    this.#upstream = upstream;
    this.#o = o;
    this.#fieldSet = fieldSetFor(type.group, type.resource, type.namespaced);
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

  start(): void {
    this.#running ??= Promise.all([this.#run(), this.#progressLoop()]).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#waiters.cancelAll();
    await this.#running;
  }

  onEvent(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A relist sent deletions at resourceVersions of its own (called before those events). */
  onRelistGap(listener: (gap: RelistGap) => void): void {
    this.#relistListeners.add(listener);
  }

  /** The object of a BOOKMARK the apiserver sent (its JSON depends on the type), once. */
  onBookmarkSample(listener: (object: Buffer) => void): void {
    this.#bookmarkListeners.add(listener);
  }

  #sampleBookmark(object: Buffer): void {
    if (this.#bookmarkSampled) return;
    this.#bookmarkSampled = true;
    for (const l of this.#bookmarkListeners) l(object);
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
    this.#o.metrics.resourceVersion(this.name, rv);
    if (!this.#store) return;
    this.#waiters.release(rv);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let needList: string | undefined = 'initial';
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#list(needList, signal);
          needList = undefined;
          if (!this.#bookmarkSampled) void fetchBookmarkSample(this.#upstream, collectionPath(this.type), this.#rv, signal, this.#o.log, this.name, (o) => this.#sampleBookmark(o));
        }
        await this.#watch(signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        if (watchWasHealthy(this.#watchDelivered, this.#watchOpenedAt)) failures = 0;
        this.#watchDelivered = false;
        this.#watchOpenedAt = 0;
        if (err instanceof UpstreamStatusError && err.expired) {
          needList = 'expired';
          this.#o.metrics.watchRestart(this.name, 'expired');
          this.#o.log.info({ resource: this.name, rv: this.#rv.toString() }, 'watch expired: relisting');
          continue;
        }
        failures++;
        const reason = err instanceof UpstreamStatusError ? `status_${err.statusCode}` : err instanceof ObjectParseError ? 'parse' : 'connection';
        if (reason === 'parse') needList = 'parse_error';
        this.#o.metrics.watchRestart(this.name, reason);
        const delay = backoffDelayMs(failures);
        this.#o.log.warn({ resource: this.name, err: String(err), retryInMs: Math.round(delay) }, needList ? 'list failed' : 'watch failed');
        await sleep(delay, signal);
      }
    }
  }

  async #list(reason: string, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const { store, rv } = await listPages(this.#upstream, this.type, this.#fieldSet, this.#o, signal);
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
    if (previous) this.#emitDiff(previous, store, previousRV, this.#rv);
  }

  /** After a relist, what changed since the old store, sent to listeners as events (relistDiff). */
  #emitDiff(before: Store, after: Store, from: bigint, to: bigint): void {
    if (this.#listeners.size === 0) return;
    const { events, gap } = relistDiff(before, after, from, to);
    if (gap) for (const l of this.#relistListeners) l(gap);
    for (const e of events) this.#emit(e);
  }

  #emit(e: StoreEvent): void {
    for (const l of this.#listeners) l(e);
  }

  /** The main watch from the current RV; returns when the apiserver ends it (timeoutSeconds). */
  async #watch(stopSignal: AbortSignal): Promise<void> {
    this.#watchDelivered = false;
    this.#watchOpenedAt = 0;
    const timeout = 240 + Math.floor(Math.random() * 120);
    const q = `watch=1&allowWatchBookmarks=true&resourceVersion=${this.#rv}&timeoutSeconds=${timeout}`;
    const res = await this.#upstream.get(`${collectionPath(this.type)}?${q}`, stopSignal);
    if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, await readBody(res.body, 1 << 20));
    this.#watchOpenedAt = Date.now();
    const lines = new LineSplitter();
    try {
      for await (const chunk of res.body) {
        for (const line of lines.push(chunk as Buffer)) this.#handleLine(line);
      }
    } catch (err) {
      if (stopSignal.aborted) return;
      throw err;
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
    return progressWatch(this.#upstream, collectionPath(this.type), this.#rv, stopSignal, (last, rv) => {
      if (generation !== this.#generation || rv <= this.#rv) return;
      this.#o.metrics.bookmark(this.name);
      if (last <= this.#rv) this.#advance(rv);
      else this.#progress.add(last, rv);
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
        this.#sampleBookmark(objBytes);
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
        const obj = storedObject(objBytes, this.#fieldSet, this.type.namespaced);
        this.#watchDelivered = true;
        if (obj.resourceVersion <= this.#rv) return;
        let previous: StoredObject | undefined;
        if (type === 'DELETED') previous = store.delete(obj.key);
        else previous = store.upsert(obj);
        this.#advance(obj.resourceVersion);
        this.#o.metrics.store(this.name, store.size, store.bytes);
        this.#emit({ type, object: obj, previous, resourceVersion: obj.resourceVersion });
        return;
      }
      default:
        throw new ObjectParseError(`unknown watch event type ${JSON.stringify(type)}`);
    }
  }
}
