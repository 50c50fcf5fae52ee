// A Reflector keeps one resource's Store current: a paginated LIST, then WATCH with bookmarks.
// 410/Expired → relist into a new Store swapped in whole; other errors → capped exponential
// backoff with jitter. The resourceVersion only ever means "every event up to here is applied".
//
// Freshness: a resource's watch advances only on its own events and on bookmarks, which the
// apiserver sends about once a minute, or 2 s before the watch's timeoutSeconds. To let a quiet
// resource prove freshness quickly, each watch is opened with timeoutSeconds = bookmark interval
// + 2 and replaced by the next one (from the current RV) as soon as its bookmark arrives, so a
// bookmark comes roughly every `bookmarkIntervalSeconds`. Each watch delivers every event after its
// start RV in order, so this is safe: events at or below the current RV are skipped, and a bookmark
// only advances the RV after all its stream's earlier events were applied.
import type { Logger } from 'pino';
import { Store } from './store.js';
import { storedObject, ObjectParseError, type StoredObject } from './stored-object.js';
import { listItemRanges, topLevelMember, watchEventObject } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { readBody, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { collectionPath, resourceName, type ResourceType } from './resource-type.js';
import { fieldSetFor, type FieldSet } from '../indexes/selectable-fields.js';
import { LineSplitter } from './line-splitter.js';
import type { ReflectorMetrics } from './metrics.js';

export interface ReflectorOptions {
  readonly pageSize: number;
  readonly indexedFields: readonly string[];
  readonly bookmarkIntervalSeconds: number;
  readonly log: Logger;
  readonly metrics: ReflectorMetrics;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A change applied to the store (for watchers served from the cache). */
export interface StoreEvent {
  readonly type: WatchEventType;
  readonly object: StoredObject;
  readonly previous: StoredObject | undefined;
  readonly resourceVersion: bigint;
}

interface Waiter {
  readonly rv: bigint;
  readonly resolve: (ok: boolean) => void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

export class Reflector {
  readonly type: ResourceType;
  readonly name: string;
  readonly #upstream: CacheUpstream;
  readonly #o: ReflectorOptions;
  readonly #fieldSet: FieldSet;
  readonly #stop = new AbortController();
  #store: Store | undefined;
  #rv = 0n;
  #waiters: Waiter[] = [];
  #running: Promise<void> | undefined;
  readonly #listeners = new Set<(e: StoreEvent) => void>();

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

  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    for (const w of this.#waiters) w.resolve(false);
    this.#waiters = [];
    await this.#running;
  }

  onEvent(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves true once the store is synced at `rv` or later, false after `timeoutMs`. */
  waitFor(rv: bigint, timeoutMs: number): Promise<boolean> {
    if (this.#store && this.#rv >= rv) return Promise.resolve(true);
    if (timeoutMs <= 0 || this.#stop.signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w: Waiter = {
        rv,
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  #advance(rv: bigint): void {
    if (rv <= this.#rv) return;
    this.#rv = rv;
    this.#o.metrics.resourceVersion(this.name, rv);
    if (this.#waiters.length === 0 || !this.#store) return;
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.rv <= rv) w.resolve(true);
      else still.push(w);
    }
    this.#waiters = still;
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
        }
        await this.#watch(signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
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
        const delay = Math.min(10_000, 250 * 2 ** Math.min(failures - 1, 6)) * (0.5 + Math.random());
        this.#o.log.warn({ resource: this.name, err: String(err), retryInMs: Math.round(delay) }, needList ? 'list failed' : 'watch failed');
        await sleep(delay, signal);
      }
    }
  }

  async #list(reason: string, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const store = new Store({ namespaced: this.type.namespaced, indexedFields: this.#o.indexedFields });
    let cont = '';
    let rv: bigint | undefined;
    for (;;) {
      const q = `limit=${this.#o.pageSize}${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`;
      const res = await this.#upstream.get(`${collectionPath(this.type)}?${q}`, signal);
      const body = await readBody(res.body);
      if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, body);
      for (const [s, e] of listItemRanges(body)) store.upsert(storedObject(body.subarray(s, e), this.#fieldSet, this.type.namespaced));
      const meta: unknown = JSON.parse(topLevelMember(body, 'metadata')?.toString('utf8') ?? '{}');
      const m = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {};
      rv ??= parseResourceVersion(m['resourceVersion']);
      cont = typeof m['continue'] === 'string' ? m['continue'] : '';
      if (!cont) break;
    }
    if (rv === undefined) throw new ObjectParseError('list without resourceVersion');
    const previous = this.#store;
    this.#store = store;
    this.#rv = 0n;
    this.#advance(rv);
    this.#o.metrics.relist(this.name, reason);
    this.#o.metrics.store(this.name, store.size, store.bytes);
    this.#o.log.info({ resource: this.name, objects: store.size, bytes: store.bytes, rv: rv.toString(), ms: Date.now() - started, reason }, 'listed');
    if (previous) this.#emitDiff(previous, store);
  }

  /** After a relist, what changed between the old and the new store, as ordinary events. */
  #emitDiff(before: Store, after: Store): void {
    if (this.#listeners.size === 0) return;
    for (const o of after.values()) {
      const old = before.get(o.key);
      if (!old) this.#emit({ type: 'ADDED', object: o, previous: undefined, resourceVersion: o.resourceVersion });
      else if (old.resourceVersion !== o.resourceVersion) this.#emit({ type: 'MODIFIED', object: o, previous: old, resourceVersion: o.resourceVersion });
    }
    for (const o of before.values()) {
      if (!after.get(o.key)) this.#emit({ type: 'DELETED', object: o, previous: o, resourceVersion: this.#rv });
    }
  }

  #emit(e: StoreEvent): void {
    for (const l of this.#listeners) l(e);
  }

  /** One watch from the current RV; returns when it times out or after its bookmark (rotation). */
  async #watch(stopSignal: AbortSignal): Promise<void> {
    const abort = new AbortController();
    const onStop = () => abort.abort();
    stopSignal.addEventListener('abort', onStop, { once: true });
    const timeout = this.#o.bookmarkIntervalSeconds + 2;
    const q = `watch=1&allowWatchBookmarks=true&resourceVersion=${this.#rv}&timeoutSeconds=${timeout}`;
    try {
      const res = await this.#upstream.get(`${collectionPath(this.type)}?${q}`, abort.signal);
      if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, await readBody(res.body, 1 << 20));
      const lines = new LineSplitter();
      try {
        for await (const chunk of res.body) {
          for (const line of lines.push(chunk as Buffer)) {
            if (this.#handleLine(line) === 'bookmark') return;
          }
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        throw err;
      }
    } finally {
      stopSignal.removeEventListener('abort', onStop);
      abort.abort();
    }
  }

  #handleLine(line: Buffer): 'bookmark' | 'event' {
    const type = line.toString('latin1', 9, line.indexOf(0x22, 9));
    const objBytes = watchEventObject(line);
    const store = this.#store;
    if (!store) throw new Error('watch without a store');
    switch (type) {
      case 'BOOKMARK': {
        const o: unknown = JSON.parse(objBytes.toString('utf8'));
        const meta = typeof o === 'object' && o !== null && 'metadata' in o ? o.metadata : undefined;
        const rv = parseResourceVersion(typeof meta === 'object' && meta !== null && 'resourceVersion' in meta ? meta.resourceVersion : undefined);
        if (rv !== undefined) this.#advance(rv);
        this.#o.metrics.bookmark(this.name);
        return 'bookmark';
      }
      case 'ERROR':
        throw UpstreamStatusError.fromStatus(500, objBytes);
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED': {
        const obj = storedObject(objBytes, this.#fieldSet, this.type.namespaced);
        if (obj.resourceVersion <= this.#rv) return 'event';
        let previous: StoredObject | undefined;
        if (type === 'DELETED') previous = store.delete(obj.key);
        else previous = store.upsert(obj);
        this.#advance(obj.resourceVersion);
        this.#o.metrics.store(this.name, store.size, store.bytes);
        this.#emit({ type, object: obj, previous, resourceVersion: obj.resourceVersion });
        return 'event';
      }
      default:
        throw new ObjectParseError(`unknown watch event type ${JSON.stringify(type)}`);
    }
  }
}
