// LIST and GET bodies built from stored bytes, never by re-serialising objects. Built-in types:
// {"kind","apiVersion","metadata","items"} with items without kind/apiVersion; CRDs: keys sorted.
import type { StoredObject } from './stored-object.js';
import { withTypeMeta } from './json-scan.js';

export interface BodyType {
  readonly kind: string;
  readonly apiVersion: string;
  /** Custom resources: the apiserver writes unstructured maps, keys sorted. */
  readonly sortedKeys: boolean;
}

export interface ListMeta {
  readonly resourceVersion: bigint;
  readonly continueToken: string | undefined;
  readonly remainingItemCount: number | undefined;
}

function metaJson(m: ListMeta, sorted: boolean): string {
  const rv = `"resourceVersion":"${m.resourceVersion}"`;
  // Custom resources are unstructured lists: the apiserver always writes continue, "" when done.
  const token = sorted ? m.continueToken ?? '' : m.continueToken;
  const cont = token !== undefined ? `"continue":${JSON.stringify(token)}` : undefined;
  const rem = m.remainingItemCount !== undefined ? `"remainingItemCount":${m.remainingItemCount}` : undefined;
  const parts = sorted ? [cont, rem, rv] : [rv, cont, rem];
  return `{${parts.filter((p) => p !== undefined).join(',')}}`;
}

const CHUNK = 64 * 1024;
const COMMA = Buffer.from(',');

function headAndTail(t: BodyType, m: ListMeta): [string, string] {
  const listKind = JSON.stringify(`${t.kind}List`);
  const apiVersion = JSON.stringify(t.apiVersion);
  const head = t.sortedKeys
    ? `{"apiVersion":${apiVersion},"items":[`
    : `{"kind":${listKind},"apiVersion":${apiVersion},"metadata":${metaJson(m, false)},"items":[`;
  const tail = t.sortedKeys ? `],"kind":${listKind},"metadata":${metaJson(m, true)}}\n` : ']}\n';
  return [head, tail];
}

/** The exact length in bytes of what listBody yields. */
export function listBodySize(t: BodyType, m: ListMeta, items: readonly StoredObject[]): number {
  const [head, tail] = headAndTail(t, m);
  let n = Buffer.byteLength(head) + Buffer.byteLength(tail) + Math.max(0, items.length - 1);
  for (const o of items) n += o.item.length;
  return n;
}

/** The list body in chunks of about 64 KiB (items are concatenated, not re-encoded). */
export function* listBody(t: BodyType, m: ListMeta, items: readonly StoredObject[]): Generator<Buffer> {
  const [head, tail] = headAndTail(t, m);
  let batch: Buffer[] = [Buffer.from(head)];
  let size = batch[0]?.length ?? 0;
  for (let i = 0; i < items.length; i++) {
    const item = (items[i] as StoredObject).item;
    if (i > 0) {
      batch.push(COMMA);
      size++;
    }
    batch.push(item);
    size += item.length;
    if (size >= CHUNK) {
      yield Buffer.concat(batch, size);
      batch = [];
      size = 0;
    }
  }
  batch.push(Buffer.from(tail));
  yield Buffer.concat(batch);
}

/** A single object as GET answers it. */
export function objectBody(t: BodyType, o: StoredObject): Buffer {
  const b = t.sortedKeys ? o.item : withTypeMeta(o.item, t.kind, t.apiVersion);
  return Buffer.concat([b, Buffer.from('\n')]);
}
