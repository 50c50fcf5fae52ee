// The inverted label index: label key → value → object keys (sorted postings, posting.ts). Used for
// the selecting label requirements (=, ==, in, exists); the others are evaluated on the candidates.
// `exists` is the union of the key's postings (an object has one value per key, so they are
// disjoint): no second posting per label is kept for it.
import { PostingUnion, Posting } from './posting.js';

export type Labels = Readonly<Record<string, string>>;

const EMPTY: Labels = Object.freeze({});

export class LabelIndex {
  readonly #byKey = new Map<string, PostingUnion>();
  #pairs = 0;

  /** Re-indexes `objKey` from `oldLabels` to `newLabels`, touching only the labels that changed. */
  update(objKey: string, oldLabels: Labels | undefined, newLabels: Labels | undefined): void {
    const before = oldLabels ?? EMPTY;
    const after = newLabels ?? EMPTY;
    if (before === after) return;
    for (const k of Object.keys(before)) {
      const v = before[k] as string;
      if (own(after, k) !== v) this.#remove(k, v, objKey);
    }
    for (const k of Object.keys(after)) {
      const v = after[k] as string;
      if (own(before, k) !== v) this.#add(k, v, objKey);
    }
  }

  #add(k: string, v: string, objKey: string): void {
    let u = this.#byKey.get(k);
    if (!u) {
      u = new PostingUnion();
      this.#byKey.set(k, u);
    }
    const p = u.byValue.get(v);
    if (!p) {
      u.byValue.set(v, new Posting(objKey));
      this.#pairs++;
      u.size++;
    } else if (p.add(objKey)) {
      u.size++;
    }
  }

  #remove(k: string, v: string, objKey: string): void {
    const u = this.#byKey.get(k);
    const p = u?.byValue.get(v);
    if (!u || !p || !p.delete(objKey)) return;
    u.size--;
    if (p.size > 0) return;
    u.byValue.delete(v);
    this.#pairs--;
    if (u.byValue.size === 0) this.#byKey.delete(k);
  }

  /** The keys with label `key=value`, in key order. */
  withValue(key: string, value: string): ReadonlySet<string> | undefined {
    return this.#byKey.get(key)?.byValue.get(value);
  }

  /** The keys with label `key` (any value): in key order per value. */
  withKey(key: string): ReadonlySet<string> | undefined {
    return this.#byKey.get(key);
  }

  get distinctPairs(): number {
    return this.#pairs;
  }
}

/** A label's value, never an inherited property (label keys like `constructor` are legal). */
function own(labels: Labels, key: string): string | undefined {
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}
