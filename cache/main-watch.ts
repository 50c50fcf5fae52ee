// One main watch of a Reflector: opened from the store's resourceVersion on an apiserver the
// balancer picks (avoiding the ones just lost), read line by line until the apiserver ends it, and
// cut short when the reflector finds it stalled (watch-health.ts).
import type { Readable } from 'node:stream';
import { readBody, UpstreamStatusError, type CacheUpstream } from './upstream.js';
import { LineSplitter } from './line-splitter.js';
import { ObjectParseError } from './stored-object.js';
import type { StallReason } from './watch-health.js';

/**
 * How long the apiserver may take to answer a watch with 200. It answers at once (the headers are
 * flushed before any event); a connection that does not is dead (connect and TLS have their own
 * bounds in the HTTP client, a request sent into a dead connection has none short enough).
 */
const OPEN_TIMEOUT_MS = 15_000;

/** The label a main watch's failure is counted and logged under (watch restarts by reason). */
export function watchFailureReason(err: unknown): string {
  return err instanceof WatchStalledError ? 'stalled'
    : err instanceof UpstreamStatusError ? `status_${err.statusCode}`
    : err instanceof ObjectParseError ? 'parse' : 'connection';
}

/** The main watch was cut because it stalled (or never answered). */
export class WatchStalledError extends Error {
  override readonly name = 'WatchStalledError';
  readonly reason: StallReason | 'open_timeout';
  constructor(reason: StallReason | 'open_timeout') {
    super(`watch stalled (${reason})`);
    this.reason = reason;
  }
}

export interface MainWatchOptions {
  readonly upstream: CacheUpstream;
  /** Path and query of the watch. */
  readonly path: string;
  /** Apiservers not to use for it (the one the previous watch failed on, those that answered 410). */
  readonly avoid: ReadonlySet<string>;
  readonly stopSignal: AbortSignal;
  /** Answered 200 by `backend` (undefined when the upstream does not say); `cut` ends the watch as stalled. */
  readonly onOpen: (backend: string | undefined, cut: (reason: StallReason) => void) => void;
  /** Answered (any status) by `backend`: who to avoid next if this watch fails. */
  readonly onBackend: (backend: string | undefined) => void;
  readonly onBytes: () => void;
  /** One complete line (an event); throwing ends the watch with that error. */
  readonly onLine: (line: Buffer) => void;
}

/**
 * Runs the watch until the apiserver ends it cleanly (resolves) or it fails (rejects: a
 * connection error, UpstreamStatusError for a non-200 answer or an ERROR event thrown by onLine,
 * WatchStalledError). Resolves without error when `stopSignal` aborts.
 */
export async function runMainWatch(o: MainWatchOptions): Promise<void> {
  const abort = new AbortController();
  let stalled: StallReason | 'open_timeout' | undefined;
  let body: Readable | undefined;
  const cut = (reason: StallReason | 'open_timeout') => {
    if (stalled || abort.signal.aborted) return;
    stalled = reason;
    abort.abort();
    // The body too, in case the upstream does not tie it to the signal once answered.
    body?.destroy();
  };
  const onStop = () => abort.abort();
  o.stopSignal.addEventListener('abort', onStop, { once: true });
  const openTimer = setTimeout(() => cut('open_timeout'), OPEN_TIMEOUT_MS);
  try {
    const res = await o.upstream.get(o.path, abort.signal, { avoid: o.avoid, longRunning: true });
    clearTimeout(openTimer);
    body = res.body;
    // The upstream may not say who answered (an older implementation): nothing to avoid then.
    const backend = typeof res.backend === 'string' ? res.backend : undefined;
    o.onBackend(backend);
    if (res.statusCode !== 200) throw UpstreamStatusError.fromStatus(res.statusCode, await readBody(res.body, 1 << 20));
    if (stalled) throw new WatchStalledError(stalled);
    o.onOpen(backend, cut);
    const lines = new LineSplitter();
    for await (const chunk of res.body) {
      o.onBytes();
      for (const line of lines.push(chunk as Buffer)) o.onLine(line);
    }
    if (stalled) throw new WatchStalledError(stalled);
  } catch (err) {
    if (o.stopSignal.aborted) return;
    if (stalled) throw new WatchStalledError(stalled);
    throw err;
  } finally {
    clearTimeout(openTimer);
    o.stopSignal.removeEventListener('abort', onStop);
    if (!abort.signal.aborted) abort.abort();
  }
}
