// Deflate segments: an object's JSON compressed once, on its own, as raw deflate blocks that end
// on a byte boundary (a sync flush) and are not final. Segments written one after another, with
// stored (uncompressed) blocks between them for the bytes that are not objects, form one valid
// deflate stream: each segment's back-references stay inside it. Wrapped in a gzip header and a
// trailer, that stream is ONE gzip member — which every gzip decoder reads, including those that
// stop after the first member (curl, browsers, OkHttp) — made without compressing anything.
//
// The trailer's CRC-32 of the whole is combined from the segments' own CRCs: crc(A·B) =
// crc(A)·x^(8|B|) ⊕ crc(B) over GF(2) modulo the CRC polynomial (what zlib's crc32_combine
// computes). x^(8|B|) mod P is computed once per segment, at compression, so combining costs one
// 32-step multiplication per object.
import { constants, crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

const POLY = 0xedb88320;

/** a·b modulo the CRC polynomial (bit-reflected, as zlib's multmodp). */
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo the polynomial. */
const X2N: number[] = [0x40000000];
for (let k = 1; k < 32; k++) X2N.push(multmodp(X2N[k - 1] as number, X2N[k - 1] as number));

/** x^(8n) modulo the polynomial: the operator that shifts a CRC over n zero bytes. */
export function crcShift(n: number): number {
  let p = 0x80000000;
  let k = 3;
  while (n > 0) {
    if (n & 1) p = multmodp(X2N[k & 31] as number, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** The CRC-32 of A·B from crc(A), crc(B) and crcShift(|B|). */
export function crcCombine(crcA: number, crcB: number, shiftB: number): number {
  return (multmodp(shiftB, crcA) ^ crcB) >>> 0;
}

/** [segment][crc32 of the JSON][its length][crcShift(length)], each a little-endian uint32. */
export const TRAILER = 12;

/**
 * Level 6 with a small window and hash table: the objects are a few KB, so a 32 KiB window gains
 * nothing, and much of a small compression's cost is setting up the compressor's state.
 */
const DEFLATE = { level: 6, windowBits: 13, memLevel: 6, finishFlush: constants.Z_SYNC_FLUSH } as const;

/**
 * `data` compressed as a segment (`z`, a view of zlib's output buffer: copy it, do not keep it) and
 * its trailer.
 */
export function segmentParts(data: Buffer): { z: Buffer; trailer: Buffer } {
  // zlib's output buffer sized for JSON (which deflates to well under half; more is appended when
  // not): a few KB from Node's buffer pool rather than a 16 KiB allocation of its own per object.
  const z = deflateRawSync(data, { ...DEFLATE, chunkSize: Math.max(1024, (data.length >>> 1) + 256) });
  const trailer = Buffer.allocUnsafe(TRAILER);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length, 4);
  trailer.writeUInt32LE(crcShift(data.length), 8);
  return { z, trailer };
}

/** `data` compressed as a segment with its trailer, in a buffer of its own. */
export function packSegment(data: Buffer): Buffer {
  const { z, trailer } = segmentParts(data);
  const out = Buffer.allocUnsafeSlow(z.length + TRAILER);
  z.copy(out);
  trailer.copy(out, z.length);
  return out;
}

export const segment = (packed: Buffer): Buffer => packed.subarray(0, packed.length - TRAILER);
export const segmentLength = (packed: Buffer): number => packed.length - TRAILER;
export const segmentCrc = (packed: Buffer): number => packed.readUInt32LE(packed.length - 12);
export const segmentSize = (packed: Buffer): number => packed.readUInt32LE(packed.length - 8);
export const segmentShift = (packed: Buffer): number => packed.readUInt32LE(packed.length - 4);

/** The data of several segments, inflated in one call (back to back, nothing between them). */
export function inflateSegments(packed: readonly Buffer[]): Buffer {
  const z = packed.length === 1 ? segment(packed[0] as Buffer) : Buffer.concat(packed.map(segment));
  return inflateRawSync(z, { finishFlush: constants.Z_SYNC_FLUSH });
}

const STORED_MAX = 0xffff;

/** The length of storedBlocks(data). */
export function storedBlocksSize(n: number): number {
  return 5 * Math.max(1, Math.ceil(n / STORED_MAX)) + n;
}

/** `data` as stored deflate blocks (byte-aligned), the last one final when `final`. */
export function storedBlocks(data: Buffer, final: boolean): Buffer {
  const out = Buffer.allocUnsafe(storedBlocksSize(data.length));
  let at = 0;
  let from = 0;
  do {
    const len = Math.min(STORED_MAX, data.length - from);
    out[at] = final && from + len >= data.length ? 1 : 0; // BFINAL, BTYPE 00 (stored)
    out.writeUInt16LE(len, at + 1);
    out.writeUInt16LE(~len & 0xffff, at + 3);
    at += 5;
    at += data.copy(out, at, from, from + len);
    from += len;
  } while (from < data.length);
  return out;
}

/** A gzip member's header: deflate, no name, no time, unknown OS. */
export const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

/** A gzip member's trailer: CRC-32 and length (modulo 2^32) of the data. */
export function gzipTrailer(crc: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeUInt32LE(crc >>> 0, 0);
  out.writeUInt32LE(size % 0x100000000, 4);
  return out;
}
