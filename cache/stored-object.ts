// One cached object: its list-item JSON bytes as the apiserver wrote them, plus only the parsed
// fields that keys and indexes need.
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
  /** The object as a list item (for built-in types: without kind/apiVersion). */
  readonly item: Buffer;
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

/** Parses an object's bytes (a list item, or a watch event's object). */
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
  const item = stripTypeMeta(bytes);
  return {
    key: namespaced ? `${namespace}/${name}` : name,
    namespace,
    name,
    resourceVersion,
    labels: labelsOf(meta['labels']),
    fields: fieldSet.values(o, namespaced),
    // An own copy: never keep a whole list page or event line alive for one object.
    item: item === bytes || item.buffer === bytes.buffer ? ownCopy(item) : item,
  };
}

function ownCopy(b: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(b.length);
  b.copy(out);
  return out;
}
