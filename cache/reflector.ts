// A Reflector keeps one resource's Store current: a paginated LIST, then WATCH with bookmarks.
// 410/Expired → relist into a new Store swapped in whole; other errors → capped exponential
// backoff with jitter. The resourceVersion only ever means "every event up to here is applied".
//
// Freshness: a resource's watch advances only on its own events and on bookmarks, which the
// apiserver sends about once a minute, or 2 s before the watch's timeoutSeconds (and only when its
// watch cache has moved past the watch's start). So besides the main watch, which applies events,
// a short "progress watch" is opened every `bookmarkIntervalSeconds` from the current RV with
// timeoutSeconds=3: its bookmark comes about a second later. A progress watch only reads its
// events' resourceVersions. Its bookmark B proves that every event up to B is one it delivered, so
// once the main watch has applied up to the last of those, the store is complete up to B: the RV
// advances to B. Each progress watch is closed after its bookmark.
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
  /** Part of a relist's diff: a burst of events sent at once. */
  readonly relist?: boolean;
}

/**
 * A relist that found objects gone: their deletions happened at unknown revisions in (from, to],
 * so each was sent at a free revision of that range (see #emitDiff). `emitted` holds the
 * resourceVersions of every event the relist sent.
 */
export interface RelistGap {
  readonly from: bigint;
  readonly to: bigint;
  readonly emitted: ReadonlySet<bigint>;
}

interface Progress {
  /** The RV the main watch must reach (the progress watch's last event, or its start). */
  readonly after: bigint;
  /** The RV the store is complete up to once it has. */
  readonly upTo: bigint;
}

interface Waiter {
  readonly rv: bigint;
  readonly resolve: (ok: boolean) => void;
}

/**
 * A main watch open this long was healthy, even on a quiet resource that delivered nothing; one
 * that fails sooner (an apiserver accepting and dropping watches) keeps backing off.
 */
const HEALTHY_WATCH_MS = 1_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
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
  #progress: Progress[] = [];
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
    for (const w of this.#waiters) w.resolve(false);
    this.#waiters = [];
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

  /**
   * Asks the apiserver for one bookmark right away: a watch-list whose label selector matches
   * nothing ends its (empty) initial events with a bookmark.
   */
  async #fetchBookmarkSample(signal: AbortSignal): Promise<void> {
    const abort = new AbortController();
    const onStop = () => abort.abort();
    signal.addEventListener('abort', onStop, { once: true });
    try {
      const q = `watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=${this.#rv}` +
        `&labelSelector=${encodeURIComponent('kube-cache-proxy.invalid/none=none')}&timeoutSeconds=10`;
      const res = await this.#upstream.get(`${collectionPath(this.type)}?${q}`, abort.signal);
      if (res.statusCode !== 200) return;
      const lines = new LineSplitter();
      for await (const chunk of res.body) {
        for (const line of lines.push(chunk as Buffer)) {
          if (eventResourceVersion(line).type !== 'BOOKMARK') continue;
          const obj = watchEventObject(line).toString('utf8').replace(',"annotations":{"k8s.io/initial-events-end":"true"}', '');
          this.#sampleBookmark(Buffer.from(obj));
          return;
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) this.#o.log.debug({ resource: this.name, err: String(err) }, 'bookmark sample failed');
    } finally {
      signal.removeEventListener('abort', onStop);
      abort.abort();
    }
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
    if (this.#progress.length > 0) {
      let upTo = rv;
      this.#progress = this.#progress.filter((p) => {
        if (p.after > rv) return true;
        if (p.upTo > upTo) upTo = p.upTo;
        return false;
      });
      this.#rv = upTo;
      rv = upTo;
    }
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
          if (!this.#bookmarkSampled) void this.#fetchBookmarkSample(signal);
        }
        await this.#watch(signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        // A watch that delivered events or bookmarks, or stayed open a while, was healthy: its
        // failure starts the backoff over (else failures from an earlier outage would delay this
        // reconnect by up to 15 s, while every consistent read waits out its budget).
        if (this.#watchDelivered || (this.#watchOpenedAt > 0 && Date.now() - this.#watchOpenedAt >= HEALTHY_WATCH_MS)) failures = 0;
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
    const previousRV = this.#rv;
    this.#store = store;
    this.#generation++;
    this.#progress = [];
    this.#rv = 0n;
    this.#firstListRV ??= rv;
    this.#advance(rv);
    this.#o.metrics.relist(this.name, reason);
    this.#o.metrics.store(this.name, store.size, store.bytes);
    this.#o.log.info({ resource: this.name, objects: store.size, bytes: store.bytes, rv: rv.toString(), ms: Date.now() - started, reason }, 'listed');
    if (previous) this.#emitDiff(previous, store, previousRV, this.#rv);
  }

  /**
   * After a relist, what changed between the old store (complete up to `from`) and the new one (at
   * `to`), as ordinary events in resourceVersion order, each at a resourceVersion of its own: a
   * client resumes from the last one it saw, and two events at one resourceVersion would make it
   * skip the second. Changed objects carry their own. A deletion happened at some revision in
   * (from, to] that no surviving object holds (so there are enough of those), but which one is
   * unknown: the deletions get the lowest such free revisions, so that by any resourceVersion a
   * client has seen at least as many deletions as had really happened (one that fails over to an
   * apiserver mid-diff rather gets a DELETED twice). Resuming from these resourceVersions is exact
   * here; from other ones inside (from, to) it is not, and the watch cache answers 410 (RelistGap).
   */
  #emitDiff(before: Store, after: Store, from: bigint, to: bigint): void {
    if (this.#listeners.size === 0) return;
    const events: StoreEvent[] = [];
    const used = new Set<bigint>();
    for (const o of after.values()) {
      const old = before.get(o.key);
      if (!old) events.push({ type: 'ADDED', object: o, previous: undefined, resourceVersion: o.resourceVersion, relist: true });
      else if (old.resourceVersion !== o.resourceVersion) events.push({ type: 'MODIFIED', object: o, previous: old, resourceVersion: o.resourceVersion, relist: true });
      else continue;
      used.add(o.resourceVersion);
    }
    let next = from + 1n;
    let deletions = 0;
    for (const o of before.values()) {
      if (after.get(o.key)) continue;
      while (next <= to && used.has(next)) next++;
      // Past `to` only if the old store was not complete up to `from` (it is): then at `to`.
      const rv = next <= to ? next : to;
      used.add(rv);
      next = rv + 1n;
      deletions++;
      events.push({ type: 'DELETED', object: o, previous: o, resourceVersion: rv, relist: true });
    }
    events.sort((a, b) => (a.resourceVersion < b.resourceVersion ? -1 : a.resourceVersion > b.resourceVersion ? 1 : 0));
    if (deletions > 0) for (const l of this.#relistListeners) l({ from, to, emitted: used });
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

  /** Opens a progress watch every bookmark interval while synced (see the file comment). */
  async #progressLoop(): Promise<void> {
    const signal = this.#stop.signal;
    const interval = this.#o.bookmarkIntervalSeconds * 1000;
    if (interval <= 0) return;
    const inFlight = new Set<Promise<void>>();
    while (!signal.aborted) {
      if (this.#store && inFlight.size < 6) {
        const p: Promise<void> = this.#progressWatch(signal).catch((err: unknown) => {
          this.#o.log.debug({ resource: this.name, err: String(err) }, 'progress watch failed');
        }).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await sleep(interval, signal);
    }
    await Promise.all(inFlight);
  }

  async #progressWatch(stopSignal: AbortSignal): Promise<void> {
    const generation = this.#generation;
    const start = this.#rv;
    const abort = new AbortController();
    const onStop = () => abort.abort();
    stopSignal.addEventListener('abort', onStop, { once: true });
    try {
      const q = `watch=1&allowWatchBookmarks=true&resourceVersion=${start}&timeoutSeconds=3`;
      const res = await this.#upstream.get(`${collectionPath(this.type)}?${q}`, abort.signal);
      if (res.statusCode !== 200) {
        res.body.destroy();
        return;
      }
      let last = start;
      const lines = new LineSplitter();
      for await (const chunk of res.body) {
        for (const line of lines.push(chunk as Buffer)) {
          const e = eventResourceVersion(line);
          if (e.type === 'ERROR') return;
          if (e.type !== 'BOOKMARK') {
            if (e.rv > last) last = e.rv;
            continue;
          }
          if (generation === this.#generation && e.rv > this.#rv) {
            this.#o.metrics.bookmark(this.name);
            if (last <= this.#rv) this.#advance(e.rv);
            else this.#progress.push({ after: last, upTo: e.rv });
          }
          return;
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    } finally {
      stopSignal.removeEventListener('abort', onStop);
      abort.abort();
    }
  }

  #handleLine(line: Buffer): void {
    const type = line.toString('latin1', 9, line.indexOf(0x22, 9));
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

/** A watch event's type and resourceVersion, parsing only the object's metadata. */
function eventResourceVersion(line: Buffer): { type: string; rv: bigint } {
  const type = line.toString('latin1', 9, line.indexOf(0x22, 9));
  const meta = topLevelMember(watchEventObject(line), 'metadata');
  const m: unknown = meta ? JSON.parse(meta.toString('utf8')) : undefined;
  const rv = typeof m === 'object' && m !== null && 'resourceVersion' in m ? parseResourceVersion(m.resourceVersion) : undefined;
  return { type, rv: rv ?? 0n };
}
