// A posting list: the keys of the objects that have one indexed value, kept as a sorted array of
// the objects' own key strings (one pointer each) instead of a Set (a hash table of ~27 bytes per
// entry, and ~100 bytes for a set of one). A single key is held without any array. Sorted, a
// posting is already in the apiserver's list order: a LIST's candidates need no real sort.
// Inserting in key order (a relist) appends; elsewhere it is a binary search and a move of
// pointers, as is a removal.

/** Below this length an insertion copies to an exactly-sized array rather than growing in place. */
const SMALL = 16;

/** The index of `key` in the sorted `arr`, or -(insertion point) - 1. */
function search(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = arr[mid] as string;
    if (k < key) lo = mid + 1;
    else if (k > key) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

export class Posting implements ReadonlySet<string> {
  #keys: string | string[];

  constructor(first: string) {
    this.#keys = first;
  }

  get size(): number {
    const k = this.#keys;
    return typeof k === 'string' ? 1 : k.length;
  }

  has(key: string): boolean {
    const k = this.#keys;
    return typeof k === 'string' ? k === key : search(k, key) >= 0;
  }

  /** Adds `key`; false when it was there already. */
  add(key: string): boolean {
    const k = this.#keys;
    if (typeof k === 'string') {
      if (k === key) return false;
      this.#keys = k < key ? [k, key] : [key, k];
      return true;
    }
    const at = search(k, key);
    if (at >= 0) return false;
    const i = -at - 1;
    if (i === k.length && k.length >= SMALL) k.push(key);
    else if (k.length < SMALL) this.#keys = k.toSpliced(i, 0, key);
    else k.splice(i, 0, key);
    return true;
  }

  /** Removes `key`; false when it was not there. An emptied posting has size 0 (drop it). */
  delete(key: string): boolean {
    const k = this.#keys;
    if (typeof k === 'string') {
      if (k !== key) return false;
      this.#keys = [];
      return true;
    }
    const at = search(k, key);
    if (at < 0) return false;
    if (k.length === 2) this.#keys = k[1 - at] as string;
    else if (at === k.length - 1) k.pop();
    else k.splice(at, 1);
    return true;
  }

  [Symbol.iterator](): ArrayIterator<string> {
    const k = this.#keys;
    return (typeof k === 'string' ? [k] : k).values();
  }

  keys(): ArrayIterator<string> {
    return this[Symbol.iterator]();
  }

  values(): ArrayIterator<string> {
    return this[Symbol.iterator]();
  }

  *entries(): SetIterator<[string, string]> {
    for (const k of this) yield [k, k];
  }

  forEach(cb: (value: string, key: string, set: ReadonlySet<string>) => void, thisArg?: unknown): void {
    for (const k of this) cb.call(thisArg, k, k, this);
  }
}

/**
 * The union of disjoint postings (the values of one label key: an object has one value per key),
 * as one read-only set; its size is kept by the caller as postings change.
 */
export class PostingUnion implements ReadonlySet<string> {
  readonly byValue = new Map<string, Posting>();
  size = 0;

  has(key: string): boolean {
    for (const p of this.byValue.values()) if (p.has(key)) return true;
    return false;
  }

  *[Symbol.iterator](): SetIterator<string> {
    for (const p of this.byValue.values()) yield* p;
  }

  keys(): SetIterator<string> {
    return this[Symbol.iterator]();
  }

  values(): SetIterator<string> {
    return this[Symbol.iterator]();
  }

  *entries(): SetIterator<[string, string]> {
    for (const k of this) yield [k, k];
  }

  forEach(cb: (value: string, key: string, set: ReadonlySet<string>) => void, thisArg?: unknown): void {
    for (const k of this) cb.call(thisArg, k, k, this);
  }
}
