// Serving WATCH from the cache: one per resource, fed by its Reflector's store events. Keeps a
// bounded event history (count and age, like the apiserver's watch cache) for watches that resume
// from a resourceVersion, and dispatches each event only to the watchers it may concern: those of
// its namespace, those whose field selector pins an indexed field (spec.nodeName) to its value, and
// unfiltered ones. A MODIFIED event that moves an object into or out of a watcher's selector
// becomes ADDED or DELETED for that watcher, as the apiserver does.
import type { Reflector } from './reflector.js';
import type { RelistGap, StoreEvent } from './store-event.js';
import type { StoredObject } from './stored-object.js';
import type { BodyType } from './list-body.js';
import { BookmarkTemplate, eventLine, eventObject, initialEncoder, withResourceVersion } from './watch-encoding.js';
import { Watcher, type WatchFilter, type WatcherLimits } from './watcher.js';
import { effectiveNamespace } from '../indexes/planner.js';
import type { WatchMetrics } from './metrics.js';

export interface HistoryLimits {
  readonly maxEvents: number;
  readonly maxAgeMs: number;
}

/**
 * One event in the history. It holds the stored objects (their bytes are the store's, compressed),
 * not its wire encodings: a line is made when the event is dispatched, shared by every watcher it
 * goes to, and made again for a watch that resumes from before it (a held line would keep ~the
 * object's JSON per event: 10,000 events of 5 KB pods are 50 MB).
 */
class HistoryEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: StoredObject;
  readonly previous: StoredObject | undefined;
  readonly rv: bigint;
  readonly at: number;

  constructor(e: StoreEvent, at: number) {
    this.type = e.type;
    this.object = e.object;
    this.previous = e.previous;
    this.rv = e.resourceVersion;
    this.at = at;
  }

  line(t: BodyType, as: 'ADDED' | 'MODIFIED' | 'DELETED' | 'LEFT'): Buffer {
    // Left the watcher's selector: DELETED with the previous content at the event's resourceVersion.
    if (as === 'LEFT') return eventLine('DELETED', withResourceVersion(eventObject(t, this.previous ?? this.object), this.rv));
    if (as === 'DELETED' && this.object.resourceVersion !== this.rv) return eventLine('DELETED', withResourceVersion(eventObject(t, this.object), this.rv));
    return eventLine(as, eventObject(t, this.object));
  }
}

/** An event's lines while it is dispatched or replayed: each made once for all the watchers it goes to. */
class EventLines {
  readonly #e: HistoryEvent;
  readonly #t: BodyType;
  #lines: Partial<Record<'ADDED' | 'MODIFIED' | 'DELETED' | 'LEFT', Buffer>> = {};

  constructor(e: HistoryEvent, t: BodyType) {
    this.#e = e;
    this.#t = t;
  }

  line(as: 'ADDED' | 'MODIFIED' | 'DELETED' | 'LEFT'): Buffer {
    return (this.#lines[as] ??= this.#e.line(this.#t, as));
  }
}

export interface WatchRequest {
  readonly filter: WatchFilter;
  /** 'state': send the current state as ADDED first; otherwise events after `fromRV`. */
  readonly start: { readonly kind: 'state'; readonly initialEventsEnd: boolean } | { readonly kind: 'from'; readonly rv: bigint };
  readonly bookmarks: boolean;
  readonly timeoutMs: number;
}

/** `index`: how events reach the watcher (served_total's label): an indexed field's name, namespace, or all. */
export type WatchStart =
  | { readonly kind: 'watching'; readonly watcher: Watcher; readonly index: string }
  | { readonly kind: 'expired'; readonly oldest: bigint; readonly index: string }
  | { readonly kind: 'not_ready' };

export class WatchCache {
  readonly #reflector: Reflector;
  readonly #body: BodyType;
  readonly #history: HistoryLimits;
  readonly #limits: WatcherLimits;
  readonly #indexedFields: readonly string[];
  #events: HistoryEvent[] = [];
  #head = 0;
  /** Every event after this resourceVersion is in the history. */
  #historyFrom: bigint | undefined;
  #bookmark: BookmarkTemplate | undefined;
  /**
   * Relists whose deletions were sent at revisions chosen by the reflector (their own are unknown).
   * Resuming strictly inside one is exact from a resourceVersion this cache sent, not from another
   * (one a client got from an apiserver meanwhile): that is answered 410 Expired, and the client
   * relists.
   */
  #gaps: RelistGap[] = [];
  readonly #all = new Set<Watcher>();
  readonly #byNamespace = new Map<string, Set<Watcher>>();
  readonly #byField = new Map<string, Map<string, Set<Watcher>>>();
  readonly #ticker: NodeJS.Timeout;
  #dispatched = 0;

  readonly #name: string;
  readonly #metrics: WatchMetrics;

  constructor(o: { reflector: Reflector; body: BodyType; name: string; metrics: WatchMetrics; history: HistoryLimits; limits: WatcherLimits; indexedFields: readonly string[] }) {
    this.#name = o.name;
    this.#metrics = o.metrics;
    this.#reflector = o.reflector;
    this.#body = o.body;
    this.#history = o.history;
    this.#limits = o.limits;
    this.#indexedFields = o.indexedFields;
    for (const f of o.indexedFields) this.#byField.set(f, new Map());
    o.reflector.onEvent((e) => this.#onEvent(e));
    o.reflector.onRelistGap((g) => this.#gaps.push(g));
    o.reflector.onBookmarkSample((b: Buffer) => {
      this.#bookmark ??= BookmarkTemplate.fromSample(b);
    });
    this.#ticker = setInterval(() => this.#tick(), 1000);
    this.#ticker.unref();
  }

  get watchers(): number {
    let n = this.#all.size;
    for (const s of this.#byNamespace.values()) n += s.size;
    for (const m of this.#byField.values()) for (const s of m.values()) n += s.size;
    return n;
  }

  get dispatched(): number {
    return this.#dispatched;
  }

  stop(): void {
    clearInterval(this.#ticker);
    for (const w of this.#everyWatcher()) w.close('shutdown');
  }

  /** Starts a watch; the caller has authorized it and waited for any freshness it needs. */
  watch(r: WatchRequest): WatchStart {
    const store = this.#reflector.store;
    if (!store || !this.#bookmark && r.bookmarks) return { kind: 'not_ready' };
    const now = Date.now();
    const rv = this.#reflector.resourceVersion;
    this.#historyFrom ??= this.#reflector.firstListResourceVersion ?? rv;
    let initial: readonly StoredObject[] = [];
    let afterInitial: Buffer | undefined;
    let replay: Array<[Buffer, bigint]> = [];
    let startRV = rv;
    if (r.start.kind === 'state') {
      initial = store.select({ namespace: r.filter.namespace, labels: r.filter.labels, fields: r.filter.fields }).items;
      if (r.start.initialEventsEnd && r.bookmarks && this.#bookmark) afterInitial = this.#bookmark.line(rv, true);
    } else {
      const from = r.start.rv;
      if (from < this.#historyFrom) return { kind: 'expired', oldest: this.#historyFrom, index: this.#index(r.filter) };
      const gap = this.#gaps.find((g) => g.from < from && from < g.to && !g.emitted.has(from));
      if (gap) return { kind: 'expired', oldest: gap.to, index: this.#index(r.filter) };
      startRV = from > rv ? rv : from;
      replay = this.#replay(from, r.filter);
    }
    const t = this.#body;
    const w = new Watcher({
      filter: r.filter, bookmarks: r.bookmarks, deadline: now + r.timeoutMs, startRV, limits: this.#limits,
      initial, encodeInitial: initialEncoder(t, initial), afterInitial,
      onClose: (x) => this.#remove(x),
    });
    for (const [line, at] of replay) w.enqueue(line, at, true);
    this.#add(w);
    return { kind: 'watching', watcher: w, index: this.#index(r.filter) };
  }

  #replay(from: bigint, filter: WatchFilter): Array<[Buffer, bigint]> {
    const probe = new Watcher({
      filter, bookmarks: false, deadline: 0, startRV: 0n, limits: this.#limits, initial: [], encodeInitial: () => Buffer.alloc(0),
      afterInitial: undefined, onClose: () => undefined,
    });
    const out: Array<[Buffer, bigint]> = [];
    // The history is in resourceVersion order: start at the first event after `from`.
    let lo = this.#head;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#events[mid] as HistoryEvent).rv <= from) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.#events.length; i++) {
      const e = this.#events[i] as HistoryEvent;
      if (e.rv <= from) continue;
      const as = this.#asSeenBy(probe, e);
      if (as) out.push([e.line(this.#body, as), e.rv]);
    }
    return out;
  }

  #asSeenBy(w: Watcher, e: HistoryEvent): 'ADDED' | 'MODIFIED' | 'DELETED' | 'LEFT' | undefined {
    const cur = e.type !== 'DELETED' && w.matches(e.object);
    const old = e.type === 'DELETED' ? w.matches(e.object) : e.previous !== undefined && w.matches(e.previous);
    if (e.type === 'DELETED') return old ? 'DELETED' : undefined;
    if (cur && old) return 'MODIFIED';
    if (cur) return 'ADDED';
    if (old) return 'LEFT';
    return undefined;
  }

  #onEvent(e: StoreEvent): void {
    const now = Date.now();
    const ev = new HistoryEvent(e, now);
    this.#historyFrom ??= this.#reflector.firstListResourceVersion ?? e.resourceVersion;
    this.#events.push(ev);
    this.#trim(now);
    const seen = new Set<Watcher>();
    const lines = new EventLines(ev, this.#body);
    let queued = 0;
    const visit = (set: Set<Watcher> | undefined) => {
      if (!set) return;
      for (const w of set) {
        if (seen.has(w)) continue;
        seen.add(w);
        const as = this.#asSeenBy(w, ev);
        // Registration is synchronous, so every watcher here has seen nothing of this event yet.
        if (as) {
          w.enqueue(lines.line(as), ev.rv, e.relist === true);
          queued++;
        }
      }
    };
    visit(this.#all);
    for (const o of [ev.object, ev.previous]) {
      if (!o) continue;
      visit(this.#byNamespace.get(o.namespace));
      for (const [field, byValue] of this.#byField) visit(byValue.get(o.fields[field] ?? ''));
    }
    this.#dispatched += seen.size;
    if (queued > 0) this.#metrics.delivered(this.#name, queued);
  }

  #trim(now: number): void {
    const maxAge = this.#history.maxAgeMs;
    while (this.#events.length - this.#head > this.#history.maxEvents || (this.#head < this.#events.length && now - (this.#events[this.#head] as HistoryEvent).at > maxAge)) {
      this.#historyFrom = (this.#events[this.#head] as HistoryEvent).rv;
      this.#head++;
    }
    const from = this.#historyFrom;
    // Relists come in order: the oldest gap goes first, once the history no longer reaches into it.
    while (from !== undefined && this.#gaps.length > 0 && (this.#gaps[0] as RelistGap).to <= from) this.#gaps.shift();
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Bookmarks (about once a minute and 2 s before the deadline) and timeouts. */
  #tick(): void {
    const now = Date.now();
    const rv = this.#reflector.resourceVersion;
    const t = this.#bookmark;
    for (const w of this.#everyWatcher()) {
      if (now >= w.deadline) {
        w.close('timeout');
        continue;
      }
      if (!w.bookmarks || !t || now < w.nextBookmarkAt) continue;
      if (rv > w.startRV) w.enqueue(t.line(rv, false), rv);
      w.nextBookmarkAt = Math.min(now + 60_000, w.deadline - 2_000 > now ? w.deadline - 2_000 : Infinity);
    }
    this.#trim(now);
  }

  *#everyWatcher(): Generator<Watcher> {
    yield* [...this.#all];
    for (const s of this.#byNamespace.values()) yield* [...s];
    for (const m of this.#byField.values()) for (const s of m.values()) yield* [...s];
  }

  #index(f: WatchFilter): string {
    for (const field of this.#indexedFields) if (this.#byField.has(field) && f.fields.requiredValue(field) !== undefined) return field;
    return effectiveNamespace({ namespace: f.namespace, labels: f.labels, fields: f.fields }) !== undefined ? 'namespace' : 'all';
  }

  /** The bucket a watcher is dispatched from: a pinned indexed field, else its namespace, else all. */
  #bucket(w: Watcher, create: boolean): Set<Watcher> | undefined {
    for (const f of this.#indexedFields) {
      const v = w.filter.fields.requiredValue(f);
      if (v === undefined) continue;
      const byValue = this.#byField.get(f);
      if (!byValue) continue;
      let s = byValue.get(v);
      if (!s && create) byValue.set(v, (s = new Set()));
      return s;
    }
    const ns = effectiveNamespace({ namespace: w.filter.namespace, labels: w.filter.labels, fields: w.filter.fields });
    if (ns !== undefined) {
      let s = this.#byNamespace.get(ns);
      if (!s && create) this.#byNamespace.set(ns, (s = new Set()));
      return s;
    }
    return this.#all;
  }

  #add(w: Watcher): void {
    this.#bucket(w, true)?.add(w);
    this.#metrics.watcherOpened(this.#name);
  }

  #remove(w: Watcher): void {
    this.#metrics.watcherClosed(this.#name, w.closed ?? 'client');
    const s = this.#bucket(w, false);
    if (!s) return;
    s.delete(w);
    if (s.size > 0 || s === this.#all) return;
    for (const m of this.#byField.values()) for (const [v, set] of m) if (set === s) m.delete(v);
    for (const [ns, set] of this.#byNamespace) if (set === s) this.#byNamespace.delete(ns);
  }
}
