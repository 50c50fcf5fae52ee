// The limits of one level, or of one flow inside a level: a token bucket, seats in flight and
// long-running requests at once. Counts are kept even where no limit is set (for the gauges).
import type { Cost } from './cost.js';
import type { LimitSpec } from './config.js';
import { TokenBucket } from './token-bucket.js';

/** Why a request cannot pass now: 0 it can; a number of ms until tokens suffice; or blocked until a release. */
export type Blocked = number | 'seats' | 'watches';

export class Limits {
  #spec: LimitSpec;
  #bucket: TokenBucket | undefined;
  inflight = 0;
  watches = 0;

  constructor(spec: LimitSpec, now: number) {
    this.#spec = spec;
    this.#bucket = spec.qps !== undefined ? new TokenBucket({ qps: spec.qps, burst: spec.burst ?? 1 }, now) : undefined;
  }

  reconfigure(spec: LimitSpec, now: number): void {
    this.#spec = spec;
    if (spec.qps === undefined) this.#bucket = undefined;
    else if (this.#bucket) this.#bucket.reconfigure({ qps: spec.qps, burst: spec.burst ?? 1 }, now);
    else this.#bucket = new TokenBucket({ qps: spec.qps, burst: spec.burst ?? 1 }, now);
  }

  blocked(cost: Cost, longRunning: boolean, now: number): Blocked {
    if (longRunning) {
      if (this.#spec.maxWatches !== undefined && this.watches >= this.#spec.maxWatches) return 'watches';
    } else if (this.#spec.maxInflight !== undefined && this.inflight > 0 && this.inflight + cost.seats > this.#spec.maxInflight) {
      // A request with more seats than the limit still runs alone.
      return 'seats';
    }
    return this.#bucket ? this.#bucket.waitMs(cost.tokens, now) : 0;
  }

  take(cost: Cost, longRunning: boolean, now: number): void {
    this.#bucket?.take(cost.tokens, now);
    if (longRunning) this.watches++;
    else this.inflight += cost.seats;
  }

  release(held: { readonly cost: Cost; readonly longRunning: boolean }, o: { readonly refund: boolean }, now: number): void {
    if (held.longRunning) this.watches--;
    else this.inflight -= held.cost.seats;
    if (o.refund) this.#bucket?.refund(held.cost.tokens, now);
  }

  /** Holding nothing and with a full bucket: forgetting it changes nothing. */
  idle(now: number): boolean {
    return this.inflight === 0 && this.watches === 0 && (!this.#bucket || this.#bucket.full(now));
  }

  tokens(now: number): number | undefined {
    return this.#bucket?.available(now);
  }
}
