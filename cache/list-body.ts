// LIST and GET bodies built from stored bytes, never by re-serialising objects. Built-in types:
// {"kind","apiVersion","metadata","items"} with items without kind/apiVersion; CRDs: keys sorted.
// A gzip body is the objects' stored gzip members concatenated (RFC 1952: a gzip file is a series
// of members; Go's net/http and Node's zlib decode them as one stream), between a member for the
// list's head and one for its tail, with a member holding the comma between two items.
import { crc32, gzipSync } from 'node:zlib';
import { itemSize, itemBytes, itemsBytes, type StoredObject } from './stored-object.js';
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
/** The comma between two items as a gzip member of its own (21 bytes), made once. */
const COMMA_MEMBER = gzipSync(COMMA);
/** Items inflated per zlib call when an identity body is built (cache/stored-object.ts itemsBytes). */
const INFLATE_BATCH = 64;

function headAndTail(t: BodyType, m: ListMeta): [Buffer, Buffer] {
  const listKind = JSON.stringify(`${t.kind}List`);
  const apiVersion = JSON.stringify(t.apiVersion);
  const head = t.sortedKeys
    ? `{"apiVersion":${apiVersion},"items":[`
    : `{"kind":${listKind},"apiVersion":${apiVersion},"metadata":${metaJson(m, false)},"items":[`;
  const tail = t.sortedKeys ? `],"kind":${listKind},"metadata":${metaJson(m, true)}}\n` : ']}\n';
  return [Buffer.from(head), Buffer.from(tail)];
}

/** The exact length in bytes of the identity body (what listBody yields). */
export function listBodySize(t: BodyType, m: ListMeta, items: readonly StoredObject[]): number {
  const [head, tail] = headAndTail(t, m);
  let n = head.length + tail.length + Math.max(0, items.length - 1);
  for (const o of items) n += itemSize(o);
  return n;
}

/** The identity body in chunks of about 64 KiB (items inflated in batches, not re-encoded). */
export function* listBody(t: BodyType, m: ListMeta, items: readonly StoredObject[]): Generator<Buffer> {
  const [head, tail] = headAndTail(t, m);
  let batch: Buffer[] = [head];
  let size = head.length;
  for (let from = 0; from < items.length; from += INFLATE_BATCH) {
    const raw = itemsBytes(items.slice(from, from + INFLATE_BATCH));
    for (let j = 0; j < raw.length; j++) {
      const item = raw[j] as Buffer;
      if (from + j > 0) {
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
  }
  batch.push(tail);
  yield Buffer.concat(batch);
}

/** The exact length in bytes of what gzipListBody yields. */
export function gzipListBodySize(t: BodyType, m: ListMeta, items: readonly StoredObject[]): number {
  const [head, tail] = headAndTail(t, m);
  let n = storedMemberSize(head.length) + storedMemberSize(tail.length) + Math.max(0, items.length - 1) * COMMA_MEMBER.length;
  for (const o of items) n += o.gz.length;
  return n;
}

/**
 * The gzip body in chunks of about 64 KiB: the stored members concatenated, nothing compressed.
 * It decodes to exactly listBody's bytes.
 */
export function* gzipListBody(t: BodyType, m: ListMeta, items: readonly StoredObject[]): Generator<Buffer> {
  const [head, tail] = headAndTail(t, m);
  const first = storedMember(head);
  let batch: Buffer[] = [first];
  let size = first.length;
  for (let i = 0; i < items.length; i++) {
    const gz = (items[i] as StoredObject).gz;
    if (i > 0) {
      batch.push(COMMA_MEMBER);
      size += COMMA_MEMBER.length;
    }
    batch.push(gz);
    size += gz.length;
    if (size >= CHUNK) {
      yield Buffer.concat(batch, size);
      batch = [];
      size = 0;
    }
  }
  batch.push(storedMember(tail));
  yield Buffer.concat(batch);
}

/** A single object as GET answers it. */
export function objectBody(t: BodyType, o: StoredObject): Buffer {
  const item = itemBytes(o);
  const b = t.sortedKeys ? item : withTypeMeta(item, t.kind, t.apiVersion);
  return Buffer.concat([b, Buffer.from('\n')]);
}

// A gzip member whose deflate data is stored blocks (no compression: heads and tails are a few
// dozen bytes, and making them costs only a CRC).
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
const STORED_MAX = 0xffff;

function storedMemberSize(n: number): number {
  return GZIP_HEADER.length + 5 * Math.max(1, Math.ceil(n / STORED_MAX)) + n + 8;
}

export function storedMember(data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(storedMemberSize(data.length));
  let at = GZIP_HEADER.copy(out, 0);
  let from = 0;
  do {
    const len = Math.min(STORED_MAX, data.length - from);
    out[at] = from + len >= data.length ? 1 : 0; // BFINAL on the last block, BTYPE 00 (stored)
    out.writeUInt16LE(len, at + 1);
    out.writeUInt16LE(~len & 0xffff, at + 3);
    at += 5;
    at += data.copy(out, at, from, from + len);
    from += len;
  } while (from < data.length);
  out.writeUInt32LE(crc32(data), at);
  out.writeUInt32LE(data.length >>> 0, at + 4);
  return out;
}
