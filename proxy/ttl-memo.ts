// Answers remembered for a time that depends on the answer, in a bounded LRU, with one computation
// in flight per key (concurrent askers share it). Expiry is checked against an injected clock, so
// the rules are testable without waiting.
import { LRUCache } from 'lru-cache';

interface Entry<V> {
  readonly value: V;
  readonly expiresAt: number;
}

export interface Computed<V> {
  readonly value: V;
  /** How long to remember it; 0: not at all (an error, asked again next time). */
  readonly ttlMs: number;
}

export class TtlMemo<V extends object> {
  readonly #lru: LRUCache<string, Entry<V>>;
  readonly #pending = new Map<string, Promise<V>>();
  readonly #now: () => number;

  constructor(o: { readonly max: number; readonly now?: () => number }) {
    this.#lru = new LRUCache<string, Entry<V>>({ max: o.max });
    this.#now = o.now ?? (() => performance.now());
  }

  /** The remembered value, unless it expired. */
  get(key: string): V | undefined {
    const e = this.#lru.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.#now()) {
      this.#lru.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    if (ttlMs > 0) this.#lru.set(key, { value, expiresAt: this.#now() + ttlMs });
  }

  /** The remembered value, or the one `compute` gives (shared with concurrent callers of the same key). */
  async resolve(key: string, compute: () => Promise<Computed<V>>): Promise<{ readonly value: V; readonly cached: boolean }> {
    const hit = this.get(key);
    if (hit !== undefined) return { value: hit, cached: true };
    let p = this.#pending.get(key);
    if (p === undefined) {
      p = compute().then((c) => {
        this.set(key, c.value, c.ttlMs);
        return c.value;
      }).finally(() => this.#pending.delete(key));
      this.#pending.set(key, p);
    }
    return { value: await p, cached: false };
  }

  get size(): number {
    return this.#lru.size;
  }
}
