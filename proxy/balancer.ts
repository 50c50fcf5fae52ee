// Which apiserver gets the next request: pure, so that it can be reasoned about and tested alone.
//
// Least outstanding requests (the default): the backend with the fewest requests in flight,
// relative to its weight, wins; ties go round-robin so that a single sequential client is spread
// too. Short requests and long-running ones (watches, upgrades) are counted apart: a backend
// holding many watches is not thereby "busy" for short requests, and watches spread by their own
// count. Weighted round-robin (the option) is nginx's smooth weighted round-robin.
//
// A backend that answers 429 (the apiserver's own flow control) is throttled: its effective weight
// is divided by 1 + p, where p counts its recent 429s and decays with a time constant of a few
// seconds, so it gets fewer requests until it recovers, without being cut off.
import type { BalancePolicy } from './options.js';

export type RequestKind = 'short' | 'long';

export interface Candidate {
  readonly key: string;
  /** Static weight (default 1). */
  readonly weight: number;
  /** Requests in flight, by kind. */
  readonly outstanding: Readonly<Record<RequestKind, number>>;
  /** Recent 429s, decayed (0: none). */
  readonly throttle: number;
}

/** The throttle's time constant: the weight of a 429 halves about every 0.7 × this. */
export const THROTTLE_DECAY_MS = 5_000;

export function effectiveWeight(c: Candidate): number {
  return c.weight / (1 + c.throttle);
}

/** The throttle count `p` at `now`, given its value `p0` at `at`, plus one when `add429`. */
export function decayedThrottle(p0: number, at: number, now: number, add429 = false): number {
  const p = p0 === 0 ? 0 : p0 * Math.exp(-(now - at) / THROTTLE_DECAY_MS);
  return (p < 0.01 ? 0 : p) + (add429 ? 1 : 0);
}

export class Balancer {
  readonly policy: BalancePolicy;
  #rotation = 0;
  /** Smooth weighted round-robin's running values, by key and kind. */
  readonly #current = new Map<string, number>();

  constructor(policy: BalancePolicy) {
    this.policy = policy;
  }

  /** The chosen candidate, or undefined when there is none. */
  pick(candidates: readonly Candidate[], kind: RequestKind): Candidate | undefined {
    if (candidates.length <= 1) return candidates[0];
    return this.policy === 'round-robin' ? this.#weightedRoundRobin(candidates, kind) : this.#leastOutstanding(candidates, kind);
  }

  #leastOutstanding(candidates: readonly Candidate[], kind: RequestKind): Candidate | undefined {
    const n = candidates.length;
    const start = this.#rotation++ % n;
    if (this.#rotation > 1e9) this.#rotation = 0;
    let best: Candidate | undefined;
    let bestScore = Infinity;
    for (let i = 0; i < n; i++) {
      const c = candidates[(start + i) % n] as Candidate;
      const score = (c.outstanding[kind] + 1) / effectiveWeight(c);
      if (score < bestScore) {
        best = c;
        bestScore = score;
      }
    }
    return best;
  }

  #weightedRoundRobin(candidates: readonly Candidate[], kind: RequestKind): Candidate | undefined {
    let total = 0;
    let best: Candidate | undefined;
    let bestValue = -Infinity;
    for (const c of candidates) {
      const w = effectiveWeight(c);
      const k = `${kind} ${c.key}`;
      const v = (this.#current.get(k) ?? 0) + w;
      this.#current.set(k, v);
      total += w;
      if (v > bestValue) {
        best = c;
        bestValue = v;
      }
    }
    if (best) this.#current.set(`${kind} ${best.key}`, bestValue - total);
    return best;
  }

  /** Forgets a backend that left the set. */
  forget(key: string): void {
    this.#current.delete(`short ${key}`);
    this.#current.delete(`long ${key}`);
  }
}
