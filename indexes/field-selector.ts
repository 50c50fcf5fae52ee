// Field selectors, parsed and matched exactly as kube-apiserver does (k8s.io/apimachinery
// pkg/fields/selector.go: ParseSelector with its identity transform, splitTerms, splitTerm,
// UnescapeValue, hasTerm/notHasTerm/andTerm).
//
//  - Terms are split on commas not preceded by an escaping backslash; empty terms are skipped (so
//    "", "," and "a=b," are all fine). Terms are sorted (byte order of the raw term) before use.
//  - Each term is split at the first position where "!=", "==" or "=" starts (tried in that order
//    at each position), so "a==b" is a equals "b" and "a=!=b" is a equals "!=b" (then rejected).
//  - The field name is taken literally (no trimming, no unescaping); the value is unescaped:
//    "\\" "\," "\=" only; any other escape, a trailing "\", or an unescaped "=" is an error.
//  - A term whose field and value are both empty ("=", "==", "!=") is dropped, as upstream's
//    Transform drops it: "!=" alone is the empty selector.
//  - Matching: a missing field reads as "" (fields.Set.Get).
// This only parses: which fields a resource supports (upstream's per-resource field label
// conversion, which rejects unknown fields with a 400) is the caller's business.
//
// Pure: no I/O, no imports from other project folders.

export type FieldSelectorOperator = 'equals' | 'notequals';

export interface FieldSelectorTerm {
  readonly field: string;
  readonly op: FieldSelectorOperator;
  /** Unescaped. */
  readonly value: string;
}

export interface FieldSelector {
  /** In upstream's order (raw terms sorted by byte order); "==" is reported as equals. */
  readonly terms: readonly FieldSelectorTerm[];
  /** True when there are no terms: the selector matches everything. */
  readonly empty: boolean;
  /** All terms hold; `get` returning undefined means the field is "". */
  matches(get: (field: string) => string | undefined): boolean;
  /**
   * The value of the first equals term on `field` (upstream RequiresExactMatch), or undefined.
   * May be "" ("spec.nodeName=" requires an empty field).
   */
  requiredValue(field: string): string | undefined;
}

export interface FieldSelectorError {
  readonly error: string;
}

const CH_BACKSLASH = 0x5c;
const CH_COMMA = 0x2c;
const CH_EQUALS = 0x3d;
const CH_BANG = 0x21;

/** Upstream splitTerms: split on unescaped commas, keeping escapes in the terms. */
function splitTerms(s: string): string[] {
  if (s.length === 0) return [];
  const terms: string[] = [];
  let start = 0;
  let inSlash = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inSlash) {
      inSlash = false;
    } else if (c === CH_BACKSLASH) {
      inSlash = true;
    } else if (c === CH_COMMA) {
      terms.push(s.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(s.slice(start));
  return terms;
}

/** Upstream splitTerm: the first position where "!=", "==" or "=" starts (in that order). */
function splitTerm(term: string): { lhs: string; op: '!=' | '==' | '='; rhs: string } | undefined {
  for (let i = 0; i < term.length; i++) {
    const c = term.charCodeAt(i);
    const next = term.charCodeAt(i + 1); // NaN past the end
    if (c === CH_BANG && next === CH_EQUALS) return { lhs: term.slice(0, i), op: '!=', rhs: term.slice(i + 2) };
    if (c === CH_EQUALS) {
      if (next === CH_EQUALS) return { lhs: term.slice(0, i), op: '==', rhs: term.slice(i + 2) };
      return { lhs: term.slice(0, i), op: '=', rhs: term.slice(i + 1) };
    }
  }
  return undefined;
}

/** Upstream UnescapeValue; returns an error message as `{ error }`. */
export function unescapeFieldValue(s: string): string | FieldSelectorError {
  let out = '';
  let inSlash = false;
  let start = 0; // start of the pending literal run
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inSlash) {
      if (c !== CH_BACKSLASH && c !== CH_COMMA && c !== CH_EQUALS) {
        return { error: `invalid field selector: invalid escape sequence: \\${String.fromCodePoint(s.codePointAt(i) ?? c)}` };
      }
      inSlash = false;
      start = i; // the escaped character starts the next run
      continue;
    }
    if (c === CH_BACKSLASH) {
      out += s.slice(start, i);
      inSlash = true;
    } else if (c === CH_COMMA || c === CH_EQUALS) {
      return { error: `invalid field selector: unescaped character in value: ${String.fromCharCode(c)}` };
    }
  }
  if (inSlash) return { error: 'invalid field selector: invalid escape sequence: \\' };
  return out + s.slice(start);
}

/** Go's string order (UTF-8 bytes), which is code point order; JS's default compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800..U+DFFF) encode code points above U+FFFF, which sort after U+E000..U+FFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys && (xs ? y >= 0xe000 : x >= 0xe000)) return xs ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

class ParsedFieldSelector implements FieldSelector {
  readonly terms: readonly FieldSelectorTerm[];
  readonly empty: boolean;
  readonly #fields: readonly string[];
  readonly #values: readonly string[];
  readonly #equals: readonly boolean[];

  constructor(terms: readonly FieldSelectorTerm[]) {
    this.terms = Object.freeze(terms.slice());
    this.empty = terms.length === 0;
    this.#fields = terms.map((t) => t.field);
    this.#values = terms.map((t) => t.value);
    this.#equals = terms.map((t) => t.op === 'equals');
  }

  matches(get: (field: string) => string | undefined): boolean {
    const fields = this.#fields;
    for (let i = 0; i < fields.length; i++) {
      const actual = get(fields[i] ?? '') ?? '';
      if ((actual === this.#values[i]) !== this.#equals[i]) return false;
    }
    return true;
  }

  requiredValue(field: string): string | undefined {
    for (const t of this.terms) {
      if (t.op === 'equals' && t.field === field) return t.value;
    }
    return undefined;
  }
}

const EVERYTHING: FieldSelector = new ParsedFieldSelector([]);

/**
 * Parses a field selector as upstream fields.ParseSelector does. Returns `{ error }` for any input
 * upstream rejects (the wording is close to, not exactly, upstream's).
 */
export function parseFieldSelector(s: string): FieldSelector | FieldSelectorError {
  const parts = splitTerms(s);
  parts.sort(compareCodePoints);
  const terms: FieldSelectorTerm[] = [];
  for (const part of parts) {
    if (part === '') continue;
    const split = splitTerm(part);
    if (split === undefined) return { error: `invalid selector: '${s}'; can't understand '${part}'` };
    const value = unescapeFieldValue(split.rhs);
    if (typeof value !== 'string') return value;
    if (split.lhs === '' && value === '') continue; // dropped by upstream's Transform
    terms.push(Object.freeze({ field: split.lhs, op: split.op === '!=' ? 'notequals' : 'equals', value }));
  }
  return terms.length === 0 ? EVERYTHING : new ParsedFieldSelector(terms);
}

/** Type guard for the error side of parseFieldSelector's result. */
export function isFieldSelectorError(r: FieldSelector | FieldSelectorError): r is FieldSelectorError {
  return 'error' in r;
}
