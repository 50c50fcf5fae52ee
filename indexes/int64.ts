// int64, as strconv.ParseInt(s, 10, 64): an optional sign, then one or more ASCII digits (no
// underscores, no spaces), within [-2^63, 2^63-1]. For the gt/lt label requirements, which parse
// both their own value and each object's without allocating.
//
// Pure: no I/O, no imports from other project folders.

const INT64_MAX_DIGITS = '9223372036854775807';
const INT64_MIN_MAGNITUDE_DIGITS = '9223372036854775808';

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_PLUS = 0x2b;
const CH_MINUS = 0x2d;

/** A parsed int64, as a view into the parsed string: its sign and where its digits start. */
export interface ParsedInt {
  negative: boolean;
  /** First significant digit; === s.length for zero. */
  start: number;
}

/**
 * Parses `s` per strconv.ParseInt(s, 10, 64) into `out` (reused, so no allocation). Returns false
 * if upstream would return an error.
 */
export function parseInt64Into(s: string, out: ParsedInt): boolean {
  const n = s.length;
  let i = 0;
  let negative = false;
  if (n > 0) {
    const c = s.charCodeAt(0);
    if (c === CH_PLUS) {
      i = 1;
    } else if (c === CH_MINUS) {
      i = 1;
      negative = true;
    }
  }
  if (i >= n) return false; // "" or a bare sign
  for (let j = i; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c < CH_0 || c > CH_9) return false;
  }
  while (i < n && s.charCodeAt(i) === CH_0) i++;
  const digits = n - i;
  if (digits > 19) return false;
  if (digits === 19) {
    const limit = negative ? INT64_MIN_MAGNITUDE_DIGITS : INT64_MAX_DIGITS;
    for (let k = 0; k < 19; k++) {
      const a = s.charCodeAt(i + k);
      const b = limit.charCodeAt(k);
      if (a !== b) {
        if (a > b) return false;
        break;
      }
    }
  }
  out.negative = negative && digits > 0; // "-0" is zero
  out.start = i;
  return true;
}

/** Compares the non-negative magnitudes a[aStart..] and b[bStart..] (no leading zeros). */
export function compareMagnitudes(a: string, aStart: number, b: string, bStart: number): number {
  const aLen = a.length - aStart;
  const bLen = b.length - bStart;
  if (aLen !== bLen) return aLen < bLen ? -1 : 1;
  for (let k = 0; k < aLen; k++) {
    const x = a.charCodeAt(aStart + k);
    const y = b.charCodeAt(bStart + k);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
