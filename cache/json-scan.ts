// Byte-level scanning of apiserver JSON, so that cached objects keep the exact bytes the apiserver
// wrote (Go escapes <, >, & as \u003c…; JSON.stringify would not) and list bodies are built by
// concatenation.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/** Index just past the JSON string starting at `i` (which holds the opening quote). */
function skipString(buf: Buffer, i: number): number {
  i++;
  while (i < buf.length) {
    const c = buf[i];
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  throw new Error('unterminated JSON string');
}

/** Index just past the JSON value starting at `i` (no leading whitespace: the apiserver writes compact JSON). */
export function skipValue(buf: Buffer, i: number): number {
  const c = buf[i];
  if (c === QUOTE) return skipString(buf, i);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    while (i < buf.length) {
      const d = buf[i];
      if (d === QUOTE) {
        i = skipString(buf, i);
        continue;
      }
      if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    throw new Error('unterminated JSON container');
  }
  // number, true, false, null
  while (i < buf.length) {
    const d = buf[i];
    if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || d === 0x20 || d === 0x0a) return i;
    i++;
  }
  return i;
}

/**
 * The byte ranges of the elements of the top-level member `"items"` of a compact JSON object
 * (a list body). Returns [] when the array is empty; throws when there is no such member.
 */
export function listItemRanges(buf: Buffer): Array<[number, number]> {
  if (buf[0] !== OPEN_BRACE) throw new Error('list body is not a JSON object');
  let i = 1;
  while (i < buf.length && buf[i] !== CLOSE_BRACE) {
    if (buf[i] === COMMA) i++;
    const keyStart = i;
    i = skipString(buf, i);
    const key = buf.toString('latin1', keyStart + 1, i - 1);
    i++; // colon
    if (key !== 'items') {
      i = skipValue(buf, i);
      continue;
    }
    const out: Array<[number, number]> = [];
    if (buf[i] !== OPEN_BRACKET) return out; // "items":null
    i++;
    while (buf[i] !== CLOSE_BRACKET) {
      // A truncated body would otherwise loop forever (skipValue makes no progress past the end).
      if (i >= buf.length) throw new Error('unterminated items array');
      if (buf[i] === COMMA) i++;
      const start = i;
      i = skipValue(buf, i);
      out.push([start, i]);
    }
    return out;
  }
  throw new Error('list body has no items');
}

const KIND_PREFIX = Buffer.from('{"kind":"');
const API_VERSION_KEY = Buffer.from('"apiVersion":"');

/**
 * A built-in object as a list item: the watch/GET encoding starts with
 * `{"kind":"Pod","apiVersion":"v1",` which list items of built-in types do not carry. Objects that
 * do not start that way (CRDs: keys sorted, kind and apiVersion kept in lists) are returned as is.
 */
export function stripTypeMeta(obj: Buffer): Buffer {
  if (!obj.subarray(0, KIND_PREFIX.length).equals(KIND_PREFIX)) return obj;
  let i = skipString(obj, KIND_PREFIX.length - 1);
  if (obj[i] !== COMMA) return obj;
  i++;
  if (!obj.subarray(i, i + API_VERSION_KEY.length).equals(API_VERSION_KEY)) return obj;
  i = skipString(obj, i + API_VERSION_KEY.length - 1);
  if (obj[i] !== COMMA) return obj;
  const out = Buffer.allocUnsafeSlow(obj.length - i);
  out[0] = OPEN_BRACE;
  obj.copy(out, 1, i + 1);
  return out;
}

/** The inverse of stripTypeMeta, for GET bodies and watch events built from a list item. */
export function withTypeMeta(item: Buffer, kind: string, apiVersion: string): Buffer {
  if (item.subarray(0, KIND_PREFIX.length).equals(KIND_PREFIX)) return item;
  const typeMeta = `"kind":${JSON.stringify(kind)},"apiVersion":${JSON.stringify(apiVersion)}`;
  if (item[1] === CLOSE_BRACE) return Buffer.from(`{${typeMeta}}`);
  return Buffer.concat([Buffer.from(`{${typeMeta},`), item.subarray(1)]);
}

/** The `object` member's bytes of a watch event line `{"type":"…","object":{…}}`. */
export function watchEventObject(line: Buffer): Buffer {
  const prefix = '{"type":"';
  if (line.toString('latin1', 0, prefix.length) !== prefix) throw new Error('not a watch event');
  let i = skipString(line, prefix.length - 1);
  const objKey = ',"object":';
  if (line.toString('latin1', i, i + objKey.length) !== objKey) throw new Error('watch event without object');
  i += objKey.length;
  return line.subarray(i, skipValue(line, i));
}

/** The bytes of a top-level member's value of a compact JSON object, or undefined. */
export function topLevelMember(buf: Buffer, name: string): Buffer | undefined {
  if (buf[0] !== OPEN_BRACE) return undefined;
  let i = 1;
  while (i < buf.length && buf[i] !== CLOSE_BRACE) {
    if (buf[i] === COMMA) i++;
    const keyStart = i;
    i = skipString(buf, i);
    const key = buf.toString('latin1', keyStart + 1, i - 1);
    i++;
    const end = skipValue(buf, i);
    if (key === name) return buf.subarray(i, end);
    i = end;
  }
  return undefined;
}
