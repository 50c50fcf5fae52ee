// One cached object: its list-item JSON bytes as the apiserver wrote them, kept compressed as one
// gzip member (made once, when the object enters the cache), plus only the parsed fields that keys
// and indexes need. Gzip answers are assembled from these members by concatenation (RFC 1952
// allows several members in a row; cache/list-body.ts); identity answers and watch events inflate
// them (docs/design.md, "Stored bytes").
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Labels } from '../indexes/label-index.js';
import type { FieldSet, FieldValues } from '../indexes/selectable-fields.js';
import { parseResourceVersion } from './resource-version.js';
import { stripTypeMeta } from './json-scan.js';

export interface StoredObject {
  /** `namespace/name`, or `name` for cluster-scoped types: the apiserver's list order. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly resourceVersion: bigint;
  readonly labels: Labels;
  readonly fields: FieldValues;
  /** The object as a list item (for built-in types: without kind/apiVersion), as one gzip member. */
  readonly gz: Buffer;
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
 * Level 6 with a small window and hash table: the objects are a few KB, so a 32 KiB window gains
 * nothing, and most of a small compression's cost is setting up the compressor's state (measured in
 * bench/README.md, "Stored bytes").
 */
const DEFLATE = { level: 6, windowBits: 13, memLevel: 6 } as const;

/** Parses an object's bytes (a list item, or a watch event's object) and compresses its item. */
export function storedObject(bytes: Buffer, fieldSet: FieldSet, namespaced: boolean): StoredObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ObjectParseError(`object is not JSON: ${String(err)}`);
  }
  const o = record(parsed);
  const meta = record(o?.['metadata']);
  if (!o || !meta) throw new ObjectParseError('object without metadata');
  const name = typeof meta['name'] === 'string' ? meta['name'] : '';
  const namespace = namespaced && typeof meta['namespace'] === 'string' ? meta['namespace'] : '';
  const resourceVersion = parseResourceVersion(meta['resourceVersion']);
  if (!name || resourceVersion === undefined || (namespaced && !namespace)) throw new ObjectParseError('object without name, namespace or resourceVersion');
  return {
    key: namespaced ? `${namespace}/${name}` : name,
    namespace,
    name,
    resourceVersion,
    labels: labelsOf(meta['labels']),
    fields: fieldSet.values(o, namespaced),
    gz: compressItem(stripTypeMeta(bytes)),
  };
}

/** One gzip member of `item`, in a buffer of its own (zlib's output sits in a larger chunk). */
export function compressItem(item: Buffer): Buffer {
  const z = gzipSync(item, DEFLATE);
  const out = Buffer.allocUnsafeSlow(z.length);
  z.copy(out);
  return out;
}

/** The length of the item's JSON: the member's ISIZE (objects are far below 4 GiB). */
export function itemSize(o: StoredObject): number {
  return o.gz.readUInt32LE(o.gz.length - 4);
}

/** The item's JSON bytes (one inflation; for GET answers and watch events). */
export function itemBytes(o: StoredObject): Buffer {
  return gunzipSync(o.gz);
}

/**
 * The items' JSON bytes, in one inflation of their members concatenated (zlib decodes several
 * members in a row), cut apart by their sizes: much cheaper per object than one call each.
 */
export function itemsBytes(objs: readonly StoredObject[]): Buffer[] {
  if (objs.length === 0) return [];
  if (objs.length === 1) return [itemBytes(objs[0] as StoredObject)];
  const all = gunzipSync(Buffer.concat(objs.map((o) => o.gz)));
  const out: Buffer[] = [];
  let at = 0;
  for (const o of objs) {
    const n = itemSize(o);
    out.push(all.subarray(at, at + n));
    at += n;
  }
  return out;
}
