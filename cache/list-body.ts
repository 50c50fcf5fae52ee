// LIST and GET bodies built from stored bytes, never by re-serialising objects. Built-in types:
// {"kind","apiVersion","metadata","items"} with items without kind/apiVersion; CRDs: keys sorted.
// A gzip body is one gzip member whose deflate stream is the objects' stored segments, with the
// list's head, the commas and its tail as stored blocks between them (cache/deflate-segments.ts):
// assembled, not compressed.
import { crc32 } from 'node:zlib';
import { itemCrc, itemSegment, itemShift, itemSize, itemBytes, itemsBytes, storedSize, type StoredObject } from './stored-object.js';
import { GZIP_HEADER, TRAILER, crcCombine, crcShift, gzipTrailer, storedBlocks, storedBlocksSize } from './deflate-segments.js';
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
/** The comma between two items as a stored block (6 bytes), made once. */
const COMMA_BLOCK = storedBlocks(COMMA, false);
const COMMA_CRC = crc32(COMMA);
const COMMA_SHIFT = crcShift(1);
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
  let n = GZIP_HEADER.length + storedBlocksSize(head.length) + storedBlocksSize(tail.length) + 8 + Math.max(0, items.length - 1) * COMMA_BLOCK.length;
  for (const o of items) n += storedSize(o) - TRAILER;
  return n;
}

/**
 * The gzip body in chunks of about 64 KiB: one gzip member, nothing compressed (the CRC is combined
 * from the items' own). It decodes to exactly listBody's bytes.
 */
export function* gzipListBody(t: BodyType, m: ListMeta, items: readonly StoredObject[]): Generator<Buffer> {
  const [head, tail] = headAndTail(t, m);
  let crc = crc32(head);
  let total = head.length;
  let batch: Buffer[] = [GZIP_HEADER, storedBlocks(head, false)];
  let size = GZIP_HEADER.length + (batch[1] as Buffer).length;
  for (let i = 0; i < items.length; i++) {
    const o = items[i] as StoredObject;
    if (i > 0) {
      batch.push(COMMA_BLOCK);
      size += COMMA_BLOCK.length;
      crc = crcCombine(crc, COMMA_CRC, COMMA_SHIFT);
      total++;
    }
    const seg = itemSegment(o);
    batch.push(seg);
    size += seg.length;
    crc = crcCombine(crc, itemCrc(o), itemShift(o));
    total += itemSize(o);
    if (size >= CHUNK) {
      yield Buffer.concat(batch, size);
      batch = [];
      size = 0;
    }
  }
  batch.push(storedBlocks(tail, true), gzipTrailer(crc32(tail, crc), total + tail.length));
  yield Buffer.concat(batch);
}

/** A single object as GET answers it. */
export function objectBody(t: BodyType, o: StoredObject): Buffer {
  const item = itemBytes(o);
  const b = t.sortedKeys ? item : withTypeMeta(item, t.kind, t.apiVersion);
  return Buffer.concat([b, Buffer.from('\n')]);
}

