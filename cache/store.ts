// A Store of one resource's objects with its indexes (namespace, configured fields, labels), as
// client-go's thread-safe store keeps them. A relist builds a new Store and swaps it in whole.
// The objects' packed segments live in the store's own slabs (segment-slabs.ts), adopted when the
// objects enter it and released when they leave.
import { ValueIndex } from '../indexes/value-index.js';
import { LabelIndex } from '../indexes/label-index.js';
import { plan, effectiveNamespace, type IndexView, type ListQuery } from '../indexes/planner.js';
import { itemSize, storedSize, type StoredObject } from './stored-object.js';
import { SlabArena } from './segment-slabs.js';

export interface StoreOptions {
  readonly namespaced: boolean;
  /** Fields with an index of their own (e.g. spec.nodeName); others are matched on candidates. */
  readonly indexedFields: readonly string[];
}

export interface Selection {
  readonly items: readonly StoredObject[];
  /** Which index chose the candidates: all, name, namespace, label, or the field's name. */
  readonly index: string;
}

export class Store implements IndexView {
  readonly namespaced: boolean;
  readonly #objects = new Map<string, StoredObject>();
  readonly #byNamespace = new ValueIndex();
  readonly #byField = new Map<string, ValueIndex>();
  readonly #labels = new LabelIndex();
  readonly #arena = new SlabArena();
  #sorted: StoredObject[] | undefined;
  #bytes = 0;
  #storedBytes = 0;

  constructor(o: StoreOptions) {
    this.namespaced = o.namespaced;
    for (const f of o.indexedFields) this.#byField.set(f, new ValueIndex());
  }

  get size(): number {
    return this.#objects.size;
  }

  /** Sum of the cached objects' JSON bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Sum of the bytes the cached objects are kept in (packed deflate segments). */
  get storedBytes(): number {
    return this.#storedBytes;
  }

  /** Where objects meant for this store have their segments written (storedObject). */
  get arena(): SlabArena {
    return this.#arena;
  }

  get(key: string): StoredObject | undefined {
    return this.#objects.get(key);
  }

  values(): IterableIterator<StoredObject> {
    return this.#objects.values();
  }

  /** Adds or replaces an object; returns the previous one. */
  upsert(obj: StoredObject): StoredObject | undefined {
    const old = this.#objects.get(obj.key);
    if (old === obj) return old;
    this.#objects.set(obj.key, obj);
    this.#arena.adopt(obj);
    if (old) this.#arena.release(old);
    this.#bytes += itemSize(obj) - (old ? itemSize(old) : 0);
    this.#storedBytes += storedSize(obj) - (old ? storedSize(old) : 0);
    if (old) {
      if (this.#sorted) this.#replaceSorted(obj);
    } else {
      this.#sorted = undefined;
      if (this.namespaced) this.#byNamespace.add(obj.namespace, obj.key);
    }
    for (const [field, index] of this.#byField) index.update(obj.key, old?.fields[field], obj.fields[field]);
    this.#labels.update(obj.key, old?.labels, obj.labels);
    return old;
  }

  delete(key: string): StoredObject | undefined {
    const old = this.#objects.get(key);
    if (!old) return undefined;
    this.#objects.delete(key);
    this.#arena.release(old);
    this.#bytes -= itemSize(old);
    this.#storedBytes -= storedSize(old);
    this.#sorted = undefined;
    if (this.namespaced) this.#byNamespace.remove(old.namespace, key);
    for (const [field, index] of this.#byField) index.update(key, old.fields[field], undefined);
    this.#labels.update(key, old.labels, undefined);
    return old;
  }

  byNamespace(namespace: string): ReadonlySet<string> | undefined {
    return this.#byNamespace.get(namespace);
  }

  byField(field: string, value: string): ReadonlySet<string> | undefined | null {
    const index = this.#byField.get(field);
    return index ? index.get(value) : null;
  }

  byLabel(key: string, value: string): ReadonlySet<string> | undefined {
    return this.#labels.withValue(key, value);
  }

  byLabelKey(key: string): ReadonlySet<string> | undefined {
    return this.#labels.withKey(key);
  }

  /** The objects matching `q`, in the apiserver's order (by key). */
  select(q: ListQuery): Selection {
    const p = plan(this, q);
    if (p.kind === 'all' && !p.filter) return { items: this.#sortedAll(), index: 'all' };
    const ns = this.namespaced ? effectiveNamespace(q) : undefined;
    let current: StoredObject | undefined;
    const field = (f: string) => current?.fields[f];
    const matches = (o: StoredObject) => {
      if (ns !== undefined && o.namespace !== ns) return false;
      if (!q.labels.empty && !q.labels.matches(o.labels)) return false;
      if (q.fields.empty) return true;
      current = o;
      return q.fields.matches(field);
    };
    if (p.kind === 'all') return { items: this.#sortedAll().filter(matches), index: 'all' };
    if (p.kind === 'key') {
      const o = this.#objects.get(p.key);
      return { items: o && matches(o) ? [o] : [], index: 'name' };
    }
    const out: StoredObject[] = [];
    for (const key of p.keys) {
      const o = this.#objects.get(key);
      if (o && matches(o)) out.push(o);
    }
    out.sort(byKey);
    return { items: out, index: p.index };
  }

  #sortedAll(): StoredObject[] {
    if (!this.#sorted) this.#sorted = [...this.#objects.values()].sort(byKey);
    return this.#sorted;
  }

  #replaceSorted(obj: StoredObject): void {
    const arr = this.#sorted;
    if (!arr) return;
    let lo = 0;
    let hi = arr.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const k = (arr[mid] as StoredObject).key;
      if (k === obj.key) {
        // Snapshots handed out earlier keep their array: copy on write.
        this.#sorted = arr.slice();
        this.#sorted[mid] = obj;
        return;
      }
      if (k < obj.key) lo = mid + 1;
      else hi = mid - 1;
    }
    this.#sorted = undefined;
  }
}

function byKey(a: StoredObject, b: StoredObject): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
