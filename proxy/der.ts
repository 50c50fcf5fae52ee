// Minimal DER (ASN.1 Distinguished Encoding Rules) encoder, just enough to
// build an X.509 certificate. Every function returns the complete TLV
// (tag, length, value) as a Buffer.

/** Encodes a DER length: short form below 128, long form otherwise. */
export function encodeLength(len: number): Buffer {
  if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`invalid DER length ${len}`);
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Encodes one TLV with a single-byte tag. */
export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const value = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), encodeLength(value.length), value]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);
export const boolean = (v: boolean): Buffer => Buffer.from([0x01, 0x01, v ? 0xff : 0x00]);
export const octetString = (v: Buffer): Buffer => tlv(0x04, v);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));

/** The raw bytes of an IA5String (ASCII); throws on non-ASCII input. */
export function ia5Bytes(s: string): Buffer {
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(s)) throw new RangeError(`not an IA5String: ${JSON.stringify(s)}`);
  return Buffer.from(s, 'latin1');
}

export const ia5String = (s: string): Buffer => tlv(0x16, ia5Bytes(s));

/** BIT STRING with zero unused bits. */
export const bitString = (v: Buffer): Buffer => tlv(0x03, Buffer.from([0x00]), v);

/** Context-specific tag [n]; constructed for EXPLICIT / constructed IMPLICIT, primitive otherwise. */
export function contextTag(n: number, constructed: boolean, ...contents: Buffer[]): Buffer {
  if (n < 0 || n > 30) throw new RangeError(`unsupported context tag ${n}`);
  return tlv(0x80 | (constructed ? 0x20 : 0) | n, ...contents);
}

/**
 * INTEGER from a non-negative value. Numbers and bigints are encoded
 * directly; a Buffer is treated as an unsigned big-endian magnitude.
 * Redundant leading zero bytes are stripped and a 0x00 is prepended when
 * the high bit would otherwise make the value negative.
 */
export function integer(v: number | bigint | Buffer): Buffer {
  let bytes: Buffer;
  if (Buffer.isBuffer(v)) {
    bytes = v;
  } else {
    let n = BigInt(v);
    if (n < 0n) throw new RangeError('negative INTEGER not supported');
    const arr: number[] = [];
    do {
      arr.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
    bytes = Buffer.from(arr);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes.readUInt8(start) === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if ((bytes.readUInt8(0) & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(0x02, bytes);
}

/** Base-128 big-endian encoding used by OID arcs. */
function base128(n: number): number[] {
  const out = [n & 0x7f];
  for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) out.unshift(0x80 | (v & 0x7f));
  return out;
}

/** OBJECT IDENTIFIER from dotted notation, e.g. "1.2.840.10045.4.3.2". */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((s) => {
    if (!/^\d+$/.test(s)) throw new RangeError(`invalid OID ${dotted}`);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new RangeError(`OID arc too large in ${dotted}`);
    return n;
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2 || (first < 2 && second > 39)) {
    throw new RangeError(`invalid OID ${dotted}`);
  }
  const bytes = [...base128(first * 40 + second)];
  for (const arc of rest) bytes.push(...base128(arc));
  return tlv(0x06, Buffer.from(bytes));
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * X.509 Time: UTCTime for years 1950..2049, GeneralizedTime otherwise
 * (RFC 5280 §4.1.2.5). Seconds precision, always UTC ("Z").
 */
export function time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const rest =
    pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds()) + 'Z';
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(pad2(y % 100) + rest, 'ascii'));
  if (y < 0 || y > 9999) throw new RangeError(`year ${y} not representable`);
  return tlv(0x18, Buffer.from(String(y).padStart(4, '0') + rest, 'ascii'));
}

/** A decoded TLV: tag byte, value bytes, and the offset just past it. */
export interface DerElement {
  tag: number;
  value: Buffer;
  end: number;
}

/** Reads one TLV (single-byte tag) at `offset`. Used to pick apart small known structures. */
export function readElement(buf: Buffer, offset = 0): DerElement {
  if (offset + 2 > buf.length) throw new RangeError('truncated DER');
  const tag = buf.readUInt8(offset);
  let len = buf.readUInt8(offset + 1);
  let pos = offset + 2;
  if (len & 0x80) {
    const nBytes = len & 0x7f;
    if (nBytes === 0 || nBytes > 4 || pos + nBytes > buf.length) throw new RangeError('bad DER length');
    len = 0;
    for (let i = 0; i < nBytes; i++) len = len * 256 + buf.readUInt8(pos + i);
    pos += nBytes;
  }
  if (pos + len > buf.length) throw new RangeError('truncated DER');
  return { tag, value: buf.subarray(pos, pos + len), end: pos + len };
}
