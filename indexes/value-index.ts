// An inverted index from one indexed value to the keys of the objects that have it, as client-go's
// thread_safe_store keeps per index: empty postings are deleted (kubernetes#84959). The postings
// are sorted key lists (posting.ts), not Sets: a few bytes per object instead of tens.
import { Posting } from './posting.js';

export class ValueIndex {
  readonly #byValue = new Map<string, Posting>();

  add(value: string, key: string): void {
    const p = this.#byValue.get(value);
    if (p) p.add(key);
    else this.#byValue.set(value, new Posting(key));
  }

  remove(value: string, key: string): void {
    const p = this.#byValue.get(value);
    if (!p) return;
    p.delete(key);
    if (p.size === 0) this.#byValue.delete(value);
  }

  /** Moves `key` from `oldValue` to `newValue`; the unchanged case costs nothing. */
  update(key: string, oldValue: string | undefined, newValue: string | undefined): void {
    if (oldValue === newValue) return;
    if (oldValue !== undefined) this.remove(oldValue, key);
    if (newValue !== undefined) this.add(newValue, key);
  }

  /** The keys with `value`, in key order. */
  get(value: string): ReadonlySet<string> | undefined {
    return this.#byValue.get(value);
  }

  /** Number of distinct values (for metrics and tests). */
  get values(): number {
    return this.#byValue.size;
  }
}
