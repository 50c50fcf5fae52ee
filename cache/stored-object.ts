// One cached object: its list-item JSON bytes as the apiserver wrote them, kept compressed as a
// deflate segment (made once, when the object enters the cache; cache/deflate-segments.ts), plus
// only the parsed fields that keys and indexes need. Gzip answers are assembled from the segments
// without compressing anything (cache/list-body.ts); identity answers and watch events inflate
// them (docs/design.md, "Stored bytes").
import type { Labels } from '../indexes/label-index.js';
import type { FieldSet, FieldValues } from '../indexes/selectable-fields.js';
import { parseResourceVersion } from './resource-version.js';
import { stripTypeMeta } from './json-scan.js';
import { withheldJsonError } from './json-error.js';
import { TRAILER, inflateSegments, segmentParts } from './deflate-segments.js';
import { UNOWNED, type Placed, type Slab, type SlabArena } from './segment-slabs.js';

/**
 * A cached object. Its packed segment ([deflate segment][crc][length][shift]) lives in a slab shared
 * with other objects (cache/segment-slabs.ts): `slab`, `at`, `len` and `slot` are moved by the
 * owning store's arena only (the bytes never change), and read through `z` or the functions below.
 */
export class StoredObject implements Placed {
  /** `namespace/name`, or `name` for cluster-scoped types: the apiserver's list order. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly resourceVersion: bigint;
  readonly labels: Labels;
  readonly fields: FieldValues;
  slab: Slab;
  at: number;
  len: number;
  slot = -1;

  constructor(key: string, namespace: string, name: string, resourceVersion: bigint, labels: Labels, fields: FieldValues, packed: { slab: Slab; at: number; len: number }) {
    this.key = key;
    this.namespace = namespace;
    this.name = name;
    this.resourceVersion = resourceVersion;
    this.labels = labels;
    this.fields = fields;
    this.slab = packed.slab;
    this.at = packed.at;
    this.len = packed.len;
  }

  /** The object as a list item (for built-in types: without kind/apiVersion), as a packed deflate segment (a view). */
  get z(): Buffer {
    return this.slab.buf.subarray(this.at, this.at + this.len);
  }
}

export class ObjectParseError extends Error {
  override readonly name = 'ObjectParseError';
}

function record(v: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function labelsOf(v: unknown): Labels {
  const r = record(v);
  if (!r) return EMPTY_LABELS;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(r)) if (typeof val === 'string') out[k] = val;
  return out;
}

const EMPTY_LABELS: Labels = Object.freeze({});

/**
 * Parses an object's bytes (a list item, or a watch event's object) and compresses its item into
 * `arena`: that of the store it is meant for (Store.arena), where it is then adopted without a copy.
 */
export function storedObject(bytes: Buffer, fieldSet: FieldSet, namespaced: boolean, arena: SlabArena = UNOWNED): StoredObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ObjectParseError(`object is not JSON: ${withheldJsonError(err)}`);
  }
  const o = record(parsed);
  const meta = record(o?.['metadata']);
  if (!o || !meta) throw new ObjectParseError('object without metadata');
  const name = typeof meta['name'] === 'string' ? meta['name'] : '';
  const namespace = namespaced && typeof meta['namespace'] === 'string' ? meta['namespace'] : '';
  const resourceVersion = parseResourceVersion(meta['resourceVersion']);
  if (!name || resourceVersion === undefined || (namespaced && !namespace)) throw new ObjectParseError('object without name, namespace or resourceVersion');
  const { z, trailer } = segmentParts(stripTypeMeta(bytes));
  const len = z.length + trailer.length;
  const { slab, at } = arena.room(len);
  z.copy(slab.buf, at);
  trailer.copy(slab.buf, at + z.length);
  return new StoredObject(namespaced ? `${namespace}/${name}` : name, namespace, name, resourceVersion, labelsOf(meta['labels']), fieldSet.values(o, namespaced), { slab, at, len });
}

/** The length of the item's JSON. */
export function itemSize(o: StoredObject): number {
  return o.slab.buf.readUInt32LE(o.at + o.len - 8);
}

/** The item's deflate segment without its trailer (a view: for assembling a gzip body). */
export function itemSegment(o: StoredObject): Buffer {
  return o.slab.buf.subarray(o.at, o.at + o.len - TRAILER);
}

/** The CRC-32 of the item's JSON, and x^(8·its length) modulo the CRC polynomial (deflate-segments.ts). */
export function itemCrc(o: StoredObject): number {
  return o.slab.buf.readUInt32LE(o.at + o.len - TRAILER);
}
export function itemShift(o: StoredObject): number {
  return o.slab.buf.readUInt32LE(o.at + o.len - 4);
}

/** The length of the packed segment the item is kept in. */
export function storedSize(o: StoredObject): number {
  return o.len;
}

/** The item's JSON bytes (one inflation; for GET answers and watch events). */
export function itemBytes(o: StoredObject): Buffer {
  return inflateSegments([o.z]);
}

/** The items' JSON bytes, in one inflation, cut apart by their sizes: much cheaper per object than one call each. */
export function itemsBytes(objs: readonly StoredObject[]): Buffer[] {
  if (objs.length === 0) return [];
  const all = inflateSegments(objs.map((o) => o.z));
  const out: Buffer[] = [];
  let at = 0;
  for (const o of objs) {
    const n = itemSize(o);
    out.push(all.subarray(at, at + n));
    at += n;
  }
  return out;
}
