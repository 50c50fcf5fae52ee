// The inverted label index: `key=value` → object keys and `key` → object keys. Used for the
// selecting label requirements (=, ==, in, exists); the others are evaluated on the candidates.
import { ValueIndex } from './value-index.js';

export type Labels = Readonly<Record<string, string>>;

const EMPTY: Labels = Object.freeze({});

export class LabelIndex {
  readonly #pairs = new ValueIndex();
  readonly #keys = new ValueIndex();

  /** Re-indexes `objKey` from `oldLabels` to `newLabels`, touching only the labels that changed. */
  update(objKey: string, oldLabels: Labels | undefined, newLabels: Labels | undefined): void {
    const before = oldLabels ?? EMPTY;
    const after = newLabels ?? EMPTY;
    if (before === after) return;
    for (const k of Object.keys(before)) {
      const v = before[k] as string;
      const nv = own(after, k);
      if (nv === v) continue;
      this.#pairs.remove(pair(k, v), objKey);
      if (nv === undefined) this.#keys.remove(k, objKey);
    }
    for (const k of Object.keys(after)) {
      const v = after[k] as string;
      const ov = own(before, k);
      if (ov === v) continue;
      this.#pairs.add(pair(k, v), objKey);
      if (ov === undefined) this.#keys.add(k, objKey);
    }
  }

  withValue(key: string, value: string): ReadonlySet<string> | undefined {
    return this.#pairs.get(pair(key, value));
  }

  withKey(key: string): ReadonlySet<string> | undefined {
    return this.#keys.get(key);
  }

  get distinctPairs(): number {
    return this.#pairs.values;
  }
}

/** A label's value, never an inherited property (label keys like `constructor` are legal). */
function own(labels: Labels, key: string): string | undefined {
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}

// A NUL cannot occur in a label key or value, so the pair encoding is unambiguous.
function pair(k: string, v: string): string {
  return `${k}\u0000${v}`;
}
