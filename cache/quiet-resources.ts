// Quiet resources: when waiting for freshness is not worth it.
//
// A read that needs R (the apiserver's revision when it arrived, or the client's
// resourceVersion) is served once the resource's store has reached R. R is a revision of the whole
// cluster: writes to any resource move it. A resource's store moves only with its own events and
// with bookmarks, and the apiserver sends bookmarks on a timer of about a second (the progress
// watches of progress-watch.ts get one ~1 s after they open). So a store behind R catches up either
// by an event of its own written at or after R — soon only if the resource is written often — or by
// the next bookmark, up to a second away.
//
// The client must not pay that second: a resource behind R whose reflector has applied no event for
// `quietAfterMs` is predicted quiet and its read is forwarded at once (the apiserver answers a
// consistent LIST from its own watch cache, which catches up with etcd's progress notifications);
// any other read behind R waits at most `budgetMs`, the time a busy resource's next event takes to
// arrive (measured: docs/design.md), then is forwarded. Forwarding is always correct; the prediction
// only decides which reads the cache serves.

/** When the resource's reflector last applied an event, on the monotonic clock. */
export class ResourceActivity {
  #lastEventAt = Number.NEGATIVE_INFINITY;
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** The reflector applied an event (a listener of Reflector.onEvent). */
  event(): void {
    this.#lastEventAt = this.#now();
  }

  /** Milliseconds since the last event (Infinity before the first). */
  idleMs(): number {
    return this.#now() - this.#lastEventAt;
  }
}

export type FreshnessPlan =
  /** The store is at or past the target: serve. */
  | { readonly kind: 'fresh' }
  /** Behind, and no event for quietAfterMs: forward at once. */
  | { readonly kind: 'quiet' }
  /** Behind, and recently written: wait up to budgetMs for the store to catch up. */
  | { readonly kind: 'wait'; readonly budgetMs: number };

export interface QuietPolicy {
  /** How long a read may wait for the store to reach its target. */
  readonly budgetMs: number;
  /** A resource behind its target with no event for this long is not waited for (0: never predicted). */
  readonly quietAfterMs: number;
}

export function planFreshness(storeRV: bigint, target: bigint, idleMs: number, p: QuietPolicy): FreshnessPlan {
  if (storeRV >= target) return { kind: 'fresh' };
  if (p.quietAfterMs > 0 && idleMs >= p.quietAfterMs) return { kind: 'quiet' };
  return { kind: 'wait', budgetMs: p.budgetMs };
}
