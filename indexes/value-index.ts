// An inverted index from one indexed value to the keys of the objects that have it, as client-go's
// thread_safe_store keeps per index: empty sets are deleted (kubernetes#84959).

export class ValueIndex {
  readonly #byValue = new Map<string, Set<string>>();

  add(value: string, key: string): void {
    let set = this.#byValue.get(value);
    if (!set) {
      set = new Set();
      this.#byValue.set(value, set);
    }
    set.add(key);
  }

  remove(value: string, key: string): void {
    const set = this.#byValue.get(value);
    if (!set) return;
    set.delete(key);
    if (set.size === 0) this.#byValue.delete(value);
  }

  /** Moves `key` from `oldValue` to `newValue`; the unchanged case costs nothing. */
  update(key: string, oldValue: string | undefined, newValue: string | undefined): void {
    if (oldValue === newValue) return;
    if (oldValue !== undefined) this.remove(oldValue, key);
    if (newValue !== undefined) this.add(newValue, key);
  }

  get(value: string): ReadonlySet<string> | undefined {
    return this.#byValue.get(value);
  }

  /** Number of distinct values (for metrics and tests). */
  get values(): number {
    return this.#byValue.size;
  }
}
