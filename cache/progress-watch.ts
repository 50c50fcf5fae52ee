// Progress watches: how a quiet resource proves its freshness.
//
// A resource's watch advances only on its own events and on bookmarks, which the apiserver sends
// about once a minute, or 2 s before the watch's timeoutSeconds (and only when its watch cache has
// moved past the watch's start). So besides the main watch, which applies events, a Reflector opens
// a short "progress watch" every `bookmarkIntervalSeconds` from its current RV with
// timeoutSeconds=3: its bookmark comes about a second later. A progress watch only reads its
// events' resourceVersions. Its bookmark B proves that every event up to B is one it delivered, so
// once the main watch has applied up to the last of those, the store is complete up to B: the RV
// advances to B. Each progress watch is closed after its bookmark.
import type { CacheUpstream } from './upstream.js';
import { LineSplitter } from './line-splitter.js';
import { eventResourceVersion } from './watch-event-line.js';
import { sleep } from './backoff.js';

/** Progress watches open at once, at the most (per resource). */
export const PROGRESS_WATCHES_MAX_IN_FLIGHT = 6;
/** The server ends a progress watch after 3 s; one not over well after that went into a dead connection. */
const PROGRESS_WATCH_DEADLINE_MS = 8_000;
/** The apiserver answers a watch at once (from its watch cache); one not answered by then went into a dead connection. */
const PROGRESS_WATCH_ANSWER_MS = 4_000;

interface Progress {
  /** The RV the main watch must reach (the progress watch's last event, or its start). */
  readonly after: bigint;
  /** The RV the store is complete up to once it has. */
  readonly upTo: bigint;
}

/** Bookmarks of progress watches that wait for the main watch to catch up with their events. */
export class PendingProgress {
  #progress: Progress[] = [];

  add(after: bigint, upTo: bigint): void {
    this.#progress.push({ after, upTo });
  }

  clear(): void {
    this.#progress = [];
  }

  /** The main watch has applied up to `rv`: the RV the store is complete up to (at least `rv`). */
  settle(rv: bigint): bigint {
    if (this.#progress.length === 0) return rv;
    let upTo = rv;
    this.#progress = this.#progress.filter((p) => {
      if (p.after > rv) return true;
      if (p.upTo > upTo) upTo = p.upTo;
      return false;
    });
    return upTo;
  }
}

/**
 * Opens a progress watch (`watch`) every `intervalMs` while `ready()`, at most
 * PROGRESS_WATCHES_MAX_IN_FLIGHT at a time, until `signal` aborts; then waits for those in flight. `onError` hears of their failures.
 */
export async function runProgressWatches(o: {
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  readonly ready: () => boolean;
  readonly watch: (signal: AbortSignal) => Promise<void>;
  readonly onError: (err: unknown) => void;
}): Promise<void> {
  const signal = o.signal;
  const interval = o.intervalMs;
  if (interval <= 0) return;
  const inFlight = new Set<Promise<void>>();
  while (!signal.aborted) {
    if (o.ready() && inFlight.size < PROGRESS_WATCHES_MAX_IN_FLIGHT) {
      const p: Promise<void> = o.watch(signal).catch(o.onError).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await sleep(interval, signal);
  }
  await Promise.all(inFlight);
}

export interface ProgressWatchListener {
  /** The apiserver answered 200: it is reachable. */
  onOpen(): void;
  /** The apiserver answered 401 or 403: the proxy's own credentials are refused. */
  onRefused(code: number): void;
  /**
   * At its first bookmark (at once, before anything else runs): the last resourceVersion of the
   * events it delivered before (`start` if none) and the bookmark's.
   */
  onBookmark(last: bigint, rv: bigint): void;
  /**
   * It ended at its timeoutSeconds without a bookmark: the apiserver sends none while the
   * resource's watch cache has not moved, a quiet resource. `last` as for onBookmark: the events it
   * delivered are all the apiserver had after `start`.
   */
  onQuietEnd(last: bigint): void;
}

/** One progress watch of `path` from `start`; closed after its first bookmark. */
export async function progressWatch(upstream: CacheUpstream, path: string, start: bigint, stopSignal: AbortSignal, l: ProgressWatchListener): Promise<void> {
  const abort = new AbortController();
  const onStop = () => abort.abort();
  stopSignal.addEventListener('abort', onStop, { once: true });
  // Without these, progress watches stuck in dead connections would fill
  // PROGRESS_WATCHES_MAX_IN_FLIGHT for long, and with them would go the evidence that the main watch
  // has stalled.
  const deadline = setTimeout(() => abort.abort(), PROGRESS_WATCH_DEADLINE_MS);
  const answerDeadline = setTimeout(() => abort.abort(), PROGRESS_WATCH_ANSWER_MS);
  try {
    const q = `watch=1&allowWatchBookmarks=true&resourceVersion=${start}&timeoutSeconds=3`;
    const res = await upstream.get(`${path}?${q}`, abort.signal, { longRunning: true });
    clearTimeout(answerDeadline);
    if (res.statusCode !== 200) {
      res.body.destroy();
      if (res.statusCode === 401 || res.statusCode === 403) l.onRefused(res.statusCode);
      return;
    }
    l.onOpen();
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
        l.onBookmark(last, e.rv);
        return;
      }
    }
    l.onQuietEnd(last);
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(deadline);
    clearTimeout(answerDeadline);
    stopSignal.removeEventListener('abort', onStop);
    abort.abort();
  }
}
