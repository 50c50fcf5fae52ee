// A token bucket: `qps` tokens a second up to `burst`. A request takes its cost in tokens; one that
// costs more than the whole burst may still pass when the bucket is full, leaving it in debt (the
// bucket then refills from below zero), so an expensive request is slowed, never refused forever.

export interface BucketSpec {
  readonly qps: number;
  readonly burst: number;
}

export class TokenBucket {
  #qps: number;
  #burst: number;
  #tokens: number;
  #at: number;

  constructor(spec: BucketSpec, now: number) {
    this.#qps = spec.qps;
    this.#burst = spec.burst;
    this.#tokens = spec.burst;
    this.#at = now;
  }

  /** New rate and burst; the tokens held are kept (capped at the new burst). */
  reconfigure(spec: BucketSpec, now: number): void {
    this.#refill(now);
    this.#qps = spec.qps;
    this.#burst = spec.burst;
    this.#tokens = Math.min(this.#tokens, spec.burst);
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#qps) / 1000);
      this.#at = now;
    }
  }

  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Milliseconds until `cost` could be taken (0: now). */
  waitMs(cost: number, now: number): number {
    this.#refill(now);
    const need = Math.min(cost, this.#burst) - this.#tokens;
    // Refills are fractions of a token: 0.1 × 10 is not 1 in floating point.
    if (need <= 1e-9) return 0;
    return this.#qps > 0 ? Math.ceil((need * 1000) / this.#qps) : Infinity;
  }

  /** Takes `cost` tokens; the caller checked waitMs() === 0. */
  take(cost: number, now: number): void {
    this.#refill(now);
    this.#tokens -= cost;
  }

  /** Gives back tokens taken for a request that was refused further on. */
  refund(cost: number, now: number): void {
    this.#refill(now);
    this.#tokens = Math.min(this.#burst, this.#tokens + cost);
  }

  /** Full, so forgetting it loses nothing. */
  full(now: number): boolean {
    return this.available(now) >= this.#burst;
  }
}
