// A small seeded PRNG (mulberry32) for tests that generate their input, so that a failure replays
// from its seed. `caseRng(seed, i)` gives case i a stream of its own: one case replays alone.

import { prng } from '../../bench/stats.js';

/** mulberry32 (bench/stats.ts's prng): 32 bits of state, uniform in [0, 1). */
export const mulberry32: (seed: number) => () => number = prng;

export class Rng {
  readonly next: () => number;
  constructor(seed: number) { this.next = mulberry32(seed); }
  chance(p: number): boolean { return this.next() < p; }
  /** An integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }
  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[this.int(xs.length)] as T;
  }
  /** One of `choices` by weight. */
  weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of choices) total += w;
    let r = this.next() * total;
    for (const [w, v] of choices) {
      r -= w;
      if (r < 0) return v;
    }
    const last = choices[choices.length - 1];
    if (!last) throw new Error('weighted pick from an empty list');
    return last[1];
  }
}

/** The seed of case `index` of a run seeded with `seed` (splitmix-style mixing of the two). */
export function caseSeed(seed: number, index: number): number {
  let z = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

export function caseRng(seed: number, index: number): Rng {
  return new Rng(caseSeed(seed, index));
}
