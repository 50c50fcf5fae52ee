// One client watch served from the cache: its filter, its bounded queue of encoded lines, and the
// initial state it still has to send (streamed lazily, so a 30k-object watch-list costs no queue).
import type { LabelSelector } from '../indexes/label-selector.js';
import type { FieldSelector } from '../indexes/field-selector.js';
import type { StoredObject } from './stored-object.js';

export interface WatchFilter {
  readonly namespace: string | undefined;
  readonly labels: LabelSelector;
  readonly fields: FieldSelector;
}

export type CloseReason = 'timeout' | 'slow' | 'client' | 'shutdown' | 'expired';

export interface WatcherLimits {
  /** Queued lines beyond which the watcher is closed as too slow (it re-watches from its RV). */
  readonly maxQueuedLines: number;
  readonly maxQueuedBytes: number;
}

export class Watcher {
  readonly filter: WatchFilter;
  readonly bookmarks: boolean;
  readonly deadline: number;
  /** The resourceVersion it started at: bookmarks go out only past it, as the apiserver's do. */
  readonly startRV: bigint;
  /** The last resourceVersion this watcher was sent (event or bookmark). */
  sentRV: bigint;
  nextBookmarkAt: number;
  closed: CloseReason | undefined;
  #initial: readonly StoredObject[];
  #initialPos = 0;
  readonly #encodeInitial: (o: StoredObject) => Buffer;
  #afterInitial: Buffer | undefined;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  /**
   * Of the queue, what came in bursts: a replay of the history when the watch starts, a relist's
   * diff. A burst arrives in one go, before any client could read it; it is bounded by the history
   * (or the store) and shares its lines with them, so it does not count against the limits: a
   * watcher is slow when it lets live events pile up, not because a burst is longer than its queue.
   */
  #burstLines = 0;
  #burstBytes = 0;
  readonly #limits: WatcherLimits;
  #wake: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #onClose: (w: Watcher) => void;
  #closedListeners: Array<(reason: CloseReason) => void> = [];

  constructor(o: {
    filter: WatchFilter; bookmarks: boolean; deadline: number; startRV: bigint; limits: WatcherLimits;
    initial: readonly StoredObject[]; encodeInitial: (o: StoredObject) => Buffer; afterInitial: Buffer | undefined;
    onClose: (w: Watcher) => void;
  }) {
    this.filter = o.filter;
    this.bookmarks = o.bookmarks;
    this.deadline = o.deadline;
    this.startRV = o.startRV;
    this.sentRV = o.startRV;
    if (Number.isFinite(o.deadline) && o.deadline > 0) {
      this.#timer = setTimeout(() => this.close('timeout'), Math.max(0, o.deadline - Date.now()));
      this.#timer.unref();
    }
    this.#limits = o.limits;
    this.#initial = o.initial;
    this.#encodeInitial = o.encodeInitial;
    this.#afterInitial = o.afterInitial;
    this.#onClose = o.onClose;
    this.nextBookmarkAt = Math.min(Date.now() + 60_000, this.deadline - 2_000);
  }

  matches(o: StoredObject): boolean {
    const f = this.filter;
    if (f.namespace !== undefined && o.namespace !== f.namespace) return false;
    if (!f.labels.empty && !f.labels.matches(o.labels)) return false;
    return f.fields.empty || f.fields.matches((name) => o.fields[name]);
  }

  /** Queues a line; a watcher that falls too far behind on live lines (not bursts) is closed. */
  enqueue(line: Buffer, rv: bigint, burst = false): void {
    if (this.closed) return;
    this.#queue.push(line);
    this.#queuedBytes += line.length;
    if (burst) {
      this.#burstLines++;
      this.#burstBytes += line.length;
    }
    if (rv > this.sentRV) this.sentRV = rv;
    if (this.#queue.length - this.#burstLines > this.#limits.maxQueuedLines || this.#queuedBytes - this.#burstBytes > this.#limits.maxQueuedBytes) {
      this.close('slow');
      return;
    }
    this.#wakeUp();
  }

  /** Up to about `maxBytes` of lines to write next, or undefined when there is nothing now. */
  take(maxBytes: number): Buffer[] | undefined {
    const out: Buffer[] = [];
    let n = 0;
    while (this.#initialPos < this.#initial.length && n < maxBytes) {
      const line = this.#encodeInitial(this.#initial[this.#initialPos] as StoredObject);
      this.#initialPos++;
      out.push(line);
      n += line.length;
    }
    if (this.#initialPos >= this.#initial.length) {
      if (this.#initial.length > 0) this.#initial = [];
      if (this.#afterInitial) {
        out.push(this.#afterInitial);
        n += this.#afterInitial.length;
        this.#afterInitial = undefined;
      }
      while (this.#queue.length > 0 && n < maxBytes) {
        const line = this.#queue.shift() as Buffer;
        this.#queuedBytes -= line.length;
        out.push(line);
        n += line.length;
      }
      // Taken from the front: what is left of a burst is at most what is left (lenient when live
      // lines queued behind a burst: they count only once the burst is out).
      if (this.#burstLines > this.#queue.length) this.#burstLines = this.#queue.length;
      if (this.#burstBytes > this.#queuedBytes) this.#burstBytes = this.#queuedBytes;
    }
    return out.length > 0 ? out : undefined;
  }

  /** Calls `f` once when the watcher closes (at once when it is closed already). */
  onClosed(f: (reason: CloseReason) => void): void {
    if (this.closed) f(this.closed);
    else this.#closedListeners.push(f);
  }

  /** Resolves when there may be something to take, or the watcher closed. */
  ready(): Promise<void> {
    if (this.closed || this.#queue.length > 0 || this.#initialPos < this.#initial.length || this.#afterInitial) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  close(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = reason;
    clearTimeout(this.#timer);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#burstLines = 0;
    this.#burstBytes = 0;
    this.#initial = [];
    this.#onClose(this);
    const listeners = this.#closedListeners;
    this.#closedListeners = [];
    for (const f of listeners) f(reason);
    this.#wakeUp();
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }
}
