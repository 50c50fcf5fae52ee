// Picks the most selective index for a LIST: a metadata.name lookup, the namespace index, an
// indexed field's `=` value, or the label index for `=`/`in`/exists requirements. The chosen
// candidates are then checked against the whole query by the caller; an empty query is "all" and
// costs no matching.
import type { LabelSelector } from './label-selector.js';
import type { FieldSelector } from './field-selector.js';

export interface IndexView {
  readonly size: number;
  readonly namespaced: boolean;
  byNamespace(namespace: string): ReadonlySet<string> | undefined;
  /** null when `field` is not indexed. */
  byField(field: string, value: string): ReadonlySet<string> | undefined | null;
  byLabel(key: string, value: string): ReadonlySet<string> | undefined;
  byLabelKey(key: string): ReadonlySet<string> | undefined;
}

export interface ListQuery {
  /** From the path; undefined for a list across namespaces (or a cluster-scoped type). */
  readonly namespace: string | undefined;
  readonly labels: LabelSelector;
  readonly fields: FieldSelector;
}

export type Plan =
  | { readonly kind: 'all'; readonly filter: boolean }
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'candidates'; readonly keys: Iterable<string>; readonly size: number; readonly index: string };

const NONE: ReadonlySet<string> = new Set();

/** The namespace every matching object has, from the path or a metadata.namespace= term. */
export function effectiveNamespace(q: ListQuery): string | undefined {
  return q.namespace ?? q.fields.requiredValue('metadata.namespace');
}

export function plan(view: IndexView, q: ListQuery): Plan {
  const ns = effectiveNamespace(q);
  const filter = ns !== undefined || !q.labels.empty || !q.fields.empty;
  if (!filter) return { kind: 'all', filter: false };

  const name = q.fields.requiredValue('metadata.name');
  if (name !== undefined) {
    if (!view.namespaced) return { kind: 'key', key: name };
    if (ns !== undefined) return { kind: 'key', key: `${ns}/${name}` };
  }

  let best: { keys: Iterable<string>; size: number; index: string } | undefined;
  const consider = (set: ReadonlySet<string> | undefined, index: string) => {
    const s = set ?? NONE;
    if (!best || s.size < best.size) best = { keys: s, size: s.size, index };
  };
  if (ns !== undefined && view.namespaced) consider(view.byNamespace(ns), 'namespace');
  for (const t of q.fields.terms) {
    if (t.op !== 'equals' || t.field === 'metadata.name' || t.field === 'metadata.namespace') continue;
    const set = view.byField(t.field, t.value);
    if (set !== null) consider(set, t.field);
  }
  for (const r of q.labels.requirements) {
    if (best && best.size === 0) break;
    if (r.operator === 'equals') consider(view.byLabel(r.key, r.values[0] ?? ''), 'label');
    else if (r.operator === 'exists') consider(view.byLabelKey(r.key), 'label');
    else if (r.operator === 'in') {
      let size = 0;
      const sets: ReadonlySet<string>[] = [];
      for (const v of r.values) {
        const s = view.byLabel(r.key, v);
        if (s) {
          sets.push(s);
          size += s.size;
        }
      }
      if (!best || size < best.size) best = { keys: union(sets), size, index: 'label' };
    }
  }
  if (!best || best.size >= view.size) return { kind: 'all', filter: true };
  return { kind: 'candidates', ...best };
}

function* union(sets: readonly ReadonlySet<string>[]): Iterable<string> {
  // Distinct values of one key select disjoint objects: no de-duplication needed.
  for (const s of sets) yield* s;
}
