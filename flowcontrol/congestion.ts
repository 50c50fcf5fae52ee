// The dynamic Retry-After. Each level keeps a congestion bucket: capacity 2^10 tokens, refilled in
// full over a 1 s window; every refusal by that level takes one token, and the Retry-After follows
// from what is left after taking: more than 1/2 of capacity → 1 s, more than 1/4 → 2 s, more than
// 1/8 → 4 s, otherwise (or empty) 8 s. A few refusals a second are told 1 s; a storm pushes its
// clients out to 2, 4 and 8 s, so that their retries spread over time instead of all coming back one
// second later and keeping the apiserver overloaded. The bucket only measures congestion: admission
// uses the level's own bucket, in-flight limit and queue.

export interface RetryAfterSpec {
  /** Tokens when full. */
  readonly capacity: number;
  /** The whole capacity refills over this window. */
  readonly windowSeconds: number;
  /** Fractions of capacity, descending: left > thresholds[i] × capacity → seconds[i]. */
  readonly thresholds: readonly number[];
  /** One more value than thresholds: the last applies when no threshold is exceeded. */
  readonly seconds: readonly number[];
}

export const DEFAULT_RETRY_AFTER: RetryAfterSpec = {
  capacity: 1024,
  windowSeconds: 1,
  thresholds: [0.5, 0.25, 0.125],
  seconds: [1, 2, 4, 8],
};

export class CongestionBucket {
  #spec: RetryAfterSpec;
  #tokens: number;
  #at: number;

  constructor(spec: RetryAfterSpec, now: number) {
    this.#spec = spec;
    this.#tokens = spec.capacity;
    this.#at = now;
  }

  reconfigure(spec: RetryAfterSpec, now: number): void {
    this.#refill(now);
    this.#spec = spec;
    this.#tokens = Math.min(this.#tokens, spec.capacity);
  }

  #refill(now: number): void {
    if (now <= this.#at) return;
    const { capacity, windowSeconds } = this.#spec;
    const rate = windowSeconds > 0 ? capacity / (windowSeconds * 1000) : Infinity;
    this.#tokens = Math.min(capacity, this.#tokens + (now - this.#at) * rate);
    this.#at = now;
  }

  /** Tokens left now. */
  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Records one refusal and returns the Retry-After (seconds) to send with it. */
  refuse(now: number): number {
    this.#refill(now);
    this.#tokens = Math.max(0, this.#tokens - 1);
    return retryAfterFor(this.#spec, this.#tokens);
  }
}

/** The Retry-After for `left` tokens remaining after a refusal took its own. */
export function retryAfterFor(spec: RetryAfterSpec, left: number): number {
  for (let i = 0; i < spec.thresholds.length; i++) {
    if (left > (spec.thresholds[i] ?? 0) * spec.capacity) return spec.seconds[i] ?? 1;
  }
  return spec.seconds[spec.thresholds.length] ?? spec.seconds[spec.seconds.length - 1] ?? 1;
}
