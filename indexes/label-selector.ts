// Label selectors, parsed and matched exactly as kube-apiserver does (k8s.io/apimachinery
// pkg/labels/selector.go: Parse, its Lexer and Parser, NewRequirement, Requirement.Matches).
//
// The lexer and parser are a transliteration of upstream's, quirks included, so that every string
// upstream accepts is accepted here with the same meaning and every string it rejects is rejected:
//  - whitespace is only ' ', '\t', '\r', '\n';
//  - a NUL character where a token would start ends the input (the rest is ignored), and a NUL
//    inside an identifier or after an operator is a separator (upstream's read() returns 0 both at
//    the end of the string and for a NUL byte);
//  - "in" and "notin" are keywords only where an operator is expected, identifiers elsewhere;
//  - set values are deduplicated and sorted ("()" is the set {""}, "(a,)" is {"", "a"});
//  - requirements are sorted by key (duplicates allowed, all must hold).
// Upstream works on UTF-8 bytes and this on UTF-16 code units; the results agree because every
// character that matters to the grammar is ASCII and any identifier holding a non-ASCII character
// is rejected by key or value validation.
//
// Pure: no I/O, no imports from other project folders.

export type LabelOperator = 'in' | 'notin' | 'exists' | 'doesnotexist' | 'equals' | 'notequals' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /**
   * Sorted and deduplicated. One value for equals/notequals/gt/lt, at least one for in/notin, none
   * for exists/doesnotexist. For gt/lt it is the literal as written (digits only, e.g. "007"): upstream
   * also requires it to be a valid label value, so it is never signed.
   */
  readonly values: readonly string[];
}

/** The name the rest of the project may use for a label requirement. */
export type Requirement = LabelRequirement;

export type Labels = Readonly<Record<string, string>>;

export interface LabelSelector {
  /** Sorted by key (stable), as upstream sorts them. */
  readonly requirements: readonly LabelRequirement[];
  /** True when there are no requirements: the selector matches everything. */
  readonly empty: boolean;
  /** Upstream Selector.Matches; undefined labels behave as an empty set. Does not allocate. */
  matches(labels: Labels | undefined): boolean;
  /**
   * For index planners: a value every matching object must have for `key` (from an equals
   * requirement or an in requirement with one value), or undefined. Unlike upstream's
   * RequiresExactMatch, which only looks at the first requirement on the key, any such requirement
   * is used; the answer is sound either way.
   */
  requiredValue(key: string): string | undefined;
}

export interface LabelSelectorError {
  readonly error: string;
}

// ---------------------------------------------------------------------------------------------
// Lexer

const TOK_ERROR = 0;
const TOK_EOS = 1;
const TOK_CLOSED_PAR = 2;
const TOK_COMMA = 3;
const TOK_DOES_NOT_EXIST = 4;
const TOK_DOUBLE_EQUALS = 5;
const TOK_EQUALS = 6;
const TOK_GREATER_THAN = 7;
const TOK_IDENTIFIER = 8;
const TOK_IN = 9;
const TOK_LESS_THAN = 10;
const TOK_NOT_EQUALS = 11;
const TOK_NOT_IN = 12;
const TOK_OPEN_PAR = 13;

type Token = number;

const STRING_TO_TOKEN: ReadonlyMap<string, Token> = new Map<string, Token>([
  [')', TOK_CLOSED_PAR],
  [',', TOK_COMMA],
  ['!', TOK_DOES_NOT_EXIST],
  ['==', TOK_DOUBLE_EQUALS],
  ['=', TOK_EQUALS],
  ['>', TOK_GREATER_THAN],
  ['in', TOK_IN],
  ['<', TOK_LESS_THAN],
  ['!=', TOK_NOT_EQUALS],
  ['notin', TOK_NOT_IN],
  ['(', TOK_OPEN_PAR],
]);

interface ScannedItem {
  readonly tok: Token;
  readonly lit: string;
}

const EOS_ITEM: ScannedItem = { tok: TOK_EOS, lit: '' };

function isWhitespace(ch: number): boolean {
  return ch === 0x20 || ch === 0x09 || ch === 0x0d || ch === 0x0a;
}

function isSpecialSymbol(ch: number): boolean {
  switch (ch) {
    case 0x3d: // =
    case 0x21: // !
    case 0x28: // (
    case 0x29: // )
    case 0x2c: // ,
    case 0x3e: // >
    case 0x3c: // <
      return true;
    default:
      return false;
  }
}

class Lexer {
  readonly #s: string;
  #pos = 0;

  constructor(s: string) {
    this.#s = s;
  }

  /** The next code unit, or 0 at the end; a NUL in the input also reads as 0 (and is consumed). */
  #read(): number {
    if (this.#pos < this.#s.length) {
      return this.#s.charCodeAt(this.#pos++);
    }
    return 0;
  }

  #unread(): void {
    this.#pos--;
  }

  #scanIdOrKeyword(): ScannedItem {
    const start = this.#pos;
    let end: number;
    for (;;) {
      const before = this.#pos;
      const ch = this.#read();
      if (ch === 0) {
        end = before;
        break;
      }
      if (isSpecialSymbol(ch) || isWhitespace(ch)) {
        this.#unread();
        end = before;
        break;
      }
    }
    const lit = this.#s.slice(start, end);
    const tok = STRING_TO_TOKEN.get(lit);
    return { tok: tok ?? TOK_IDENTIFIER, lit };
  }

  #scanSpecialSymbol(): ScannedItem {
    let lastTok: Token = TOK_ERROR;
    let lastLit = '';
    let buffer = '';
    for (;;) {
      const ch = this.#read();
      if (ch === 0) break;
      if (!isSpecialSymbol(ch)) {
        this.#unread();
        break;
      }
      buffer += String.fromCharCode(ch);
      const tok = STRING_TO_TOKEN.get(buffer);
      if (tok !== undefined) {
        lastTok = tok;
        lastLit = buffer;
      } else if (lastTok !== TOK_ERROR) {
        this.#unread();
        break;
      }
    }
    if (lastTok === TOK_ERROR) {
      return { tok: TOK_ERROR, lit: `error expected: keyword found '${buffer}'` };
    }
    return { tok: lastTok, lit: lastLit };
  }

  lex(): ScannedItem {
    let ch = this.#read();
    while (isWhitespace(ch)) ch = this.#read();
    if (ch === 0) return EOS_ITEM;
    this.#unread();
    return isSpecialSymbol(ch) ? this.#scanSpecialSymbol() : this.#scanIdOrKeyword();
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

const CTX_KEY_AND_OPERATOR = 0;
const CTX_VALUES = 1;
type ParserContext = typeof CTX_KEY_AND_OPERATOR | typeof CTX_VALUES;

/** Upstream's selection.Operator, before "=" and "==" are merged. */
type RawOperator = LabelOperator | 'doubleequals';

interface RawRequirement {
  readonly key: string;
  readonly operator: RawOperator;
  readonly values: readonly string[];
}

class ParseError {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

class Parser {
  readonly #items: ScannedItem[] = [];
  #position = 0;

  constructor(s: string) {
    const lexer = new Lexer(s);
    for (;;) {
      const item = lexer.lex();
      this.#items.push(item);
      if (item.tok === TOK_EOS) break;
    }
  }

  #lookahead(context: ParserContext): ScannedItem {
    return this.#contextual(this.#items[this.#position] ?? EOS_ITEM, context);
  }

  #consume(context: ParserContext): ScannedItem {
    const item = this.#items[this.#position] ?? EOS_ITEM;
    this.#position++;
    return this.#contextual(item, context);
  }

  #contextual(item: ScannedItem, context: ParserContext): ScannedItem {
    if (context === CTX_VALUES && (item.tok === TOK_IN || item.tok === TOK_NOT_IN)) {
      return { tok: TOK_IDENTIFIER, lit: item.lit };
    }
    return item;
  }

  parse(): RawRequirement[] | ParseError {
    const requirements: RawRequirement[] = [];
    for (;;) {
      const { tok, lit } = this.#lookahead(CTX_VALUES);
      switch (tok) {
        case TOK_IDENTIFIER:
        case TOK_DOES_NOT_EXIST: {
          const r = this.#parseRequirement();
          if (r instanceof ParseError) return new ParseError(`unable to parse requirement: ${r.message}`);
          requirements.push(r);
          const next = this.#consume(CTX_VALUES);
          switch (next.tok) {
            case TOK_EOS:
              return requirements;
            case TOK_COMMA: {
              const after = this.#lookahead(CTX_VALUES);
              if (after.tok !== TOK_IDENTIFIER && after.tok !== TOK_DOES_NOT_EXIST) {
                return new ParseError(`found '${after.lit}', expected: identifier after ','`);
              }
              break;
            }
            default:
              return new ParseError(`found '${next.lit}', expected: ',' or 'end of string'`);
          }
          break;
        }
        case TOK_EOS:
          return requirements;
        default:
          return new ParseError(`found '${lit}', expected: !, identifier, or 'end of string'`);
      }
    }
  }

  #parseRequirement(): RawRequirement | ParseError {
    const ko = this.#parseKeyAndInferOperator();
    if (ko instanceof ParseError) return ko;
    const { key } = ko;
    if (ko.operator === 'exists' || ko.operator === 'doesnotexist') {
      return newRequirement(key, ko.operator, []);
    }
    const operator = this.#parseOperator();
    if (operator instanceof ParseError) return operator;
    const values = operator === 'in' || operator === 'notin' ? this.#parseValues() : this.#parseExactValue();
    if (values instanceof ParseError) return values;
    return newRequirement(key, operator, sortedUnique(values));
  }

  #parseKeyAndInferOperator(): { key: string; operator: RawOperator | undefined } | ParseError {
    let operator: RawOperator | undefined;
    let item = this.#consume(CTX_VALUES);
    if (item.tok === TOK_DOES_NOT_EXIST) {
      operator = 'doesnotexist';
      item = this.#consume(CTX_VALUES);
    }
    if (item.tok !== TOK_IDENTIFIER) {
      return new ParseError(`found '${item.lit}', expected: identifier`);
    }
    const keyError = labelKeyError(item.lit);
    if (keyError !== undefined) return new ParseError(keyError);
    const next = this.#lookahead(CTX_VALUES).tok;
    if ((next === TOK_EOS || next === TOK_COMMA) && operator !== 'doesnotexist') {
      operator = 'exists';
    }
    return { key: item.lit, operator };
  }

  #parseOperator(): RawOperator | ParseError {
    const { tok, lit } = this.#consume(CTX_KEY_AND_OPERATOR);
    switch (tok) {
      case TOK_IN:
        return 'in';
      case TOK_EQUALS:
        return 'equals';
      case TOK_DOUBLE_EQUALS:
        return 'doubleequals';
      case TOK_GREATER_THAN:
        return 'gt';
      case TOK_LESS_THAN:
        return 'lt';
      case TOK_NOT_IN:
        return 'notin';
      case TOK_NOT_EQUALS:
        return 'notequals';
      default:
        return new ParseError(`found '${lit}', expected: in, notin, =, ==, !=, >, <`);
    }
  }

  #parseValues(): string[] | ParseError {
    const open = this.#consume(CTX_VALUES);
    if (open.tok !== TOK_OPEN_PAR) {
      return new ParseError(`found '${open.lit}' expected: '('`);
    }
    const { tok, lit } = this.#lookahead(CTX_VALUES);
    switch (tok) {
      case TOK_IDENTIFIER:
      case TOK_COMMA: {
        const values = this.#parseIdentifiersList();
        if (values instanceof ParseError) return values;
        if (this.#consume(CTX_VALUES).tok !== TOK_CLOSED_PAR) {
          return new ParseError(`found '${lit}', expected: ')'`);
        }
        return values;
      }
      case TOK_CLOSED_PAR:
        this.#consume(CTX_VALUES);
        return [''];
      default:
        return new ParseError(`found '${lit}', expected: ',', ')' or identifier`);
    }
  }

  /** A possibly empty list of comma separated, possibly empty identifiers (duplicates kept). */
  #parseIdentifiersList(): string[] | ParseError {
    const values: string[] = [];
    for (;;) {
      const { tok, lit } = this.#consume(CTX_VALUES);
      switch (tok) {
        case TOK_IDENTIFIER: {
          values.push(lit);
          const next = this.#lookahead(CTX_VALUES);
          switch (next.tok) {
            case TOK_COMMA:
              continue;
            case TOK_CLOSED_PAR:
              return values;
            default:
              return new ParseError(`found '${next.lit}', expected: ',' or ')'`);
          }
        }
        case TOK_COMMA: {
          if (values.length === 0) values.push(''); // "(,"
          const next = this.#lookahead(CTX_VALUES).tok;
          if (next === TOK_CLOSED_PAR) {
            values.push(''); // ",)"
            return values;
          }
          if (next === TOK_COMMA) values.push(''); // ",,"
          continue;
        }
        default:
          return new ParseError(`found '${lit}', expected: ',', or identifier`);
      }
    }
  }

  #parseExactValue(): string[] | ParseError {
    const next = this.#lookahead(CTX_VALUES).tok;
    if (next === TOK_EOS || next === TOK_COMMA) return [''];
    const { tok, lit } = this.#consume(CTX_VALUES);
    if (tok === TOK_IDENTIFIER) return [lit];
    return new ParseError(`found '${lit}', expected: identifier`);
  }
}

function sortedUnique(values: readonly string[]): string[] {
  const out = [...new Set(values)];
  // Default sort compares UTF-16 code units; it agrees with Go's byte order for the ASCII strings
  // that can survive validation, and order does not change what a set matches.
  out.sort();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation (k8s.io/apimachinery pkg/api/validate/content: IsLabelKey, IsLabelValue,
// IsDNS1123Subdomain). Lengths are checked before the regular expressions, which therefore only
// ever see short strings.

const LABEL_NAME_MAX_LENGTH = 63;
const LABEL_VALUE_MAX_LENGTH = 63;
const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;
const LABEL_NAME_RE = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a valid label key (upstream content.IsLabelKey), or undefined if it is. */
export function labelKeyError(key: string): string | undefined {
  const parts = key.split('/');
  let name: string;
  if (parts.length === 1) {
    name = key;
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    name = parts[1] ?? '';
    if (prefix.length === 0) return `invalid label key '${key}': prefix part must be non-empty`;
    if (prefix.length > DNS1123_SUBDOMAIN_MAX_LENGTH) {
      return `invalid label key '${key}': prefix part must be no more than ${DNS1123_SUBDOMAIN_MAX_LENGTH} characters`;
    }
    if (!DNS1123_SUBDOMAIN_RE.test(prefix)) {
      return `invalid label key '${key}': prefix part must be a lowercase RFC 1123 subdomain`;
    }
  } else {
    return `invalid label key '${key}': at most one '/' is allowed`;
  }
  if (name.length === 0) return `invalid label key '${key}': name part must be non-empty`;
  if (name.length > LABEL_NAME_MAX_LENGTH) {
    return `invalid label key '${key}': name part must be no more than ${LABEL_NAME_MAX_LENGTH} characters`;
  }
  if (!LABEL_NAME_RE.test(name)) {
    return `invalid label key '${key}': name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

/** Why `value` is not a valid label value (upstream content.IsLabelValue), or undefined if it is. */
export function labelValueError(value: string): string | undefined {
  if (value.length > LABEL_VALUE_MAX_LENGTH) {
    return `invalid label value '${value}': must be no more than ${LABEL_VALUE_MAX_LENGTH} characters`;
  }
  if (!LABEL_VALUE_RE.test(value)) {
    return `invalid label value '${value}': must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// int64, as strconv.ParseInt(s, 10, 64): an optional sign, then one or more ASCII digits (no
// underscores, no spaces), within [-2^63, 2^63-1].

const INT64_MAX_DIGITS = '9223372036854775807';
const INT64_MIN_MAGNITUDE_DIGITS = '9223372036854775808';

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_PLUS = 0x2b;
const CH_MINUS = 0x2d;

/** A parsed int64, as a view into the parsed string: its sign and where its digits start. */
interface ParsedInt {
  negative: boolean;
  /** First significant digit; === s.length for zero. */
  start: number;
}

/**
 * Parses `s` per strconv.ParseInt(s, 10, 64) into `out` (reused, so no allocation). Returns false
 * if upstream would return an error.
 */
function parseInt64Into(s: string, out: ParsedInt): boolean {
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
function compareMagnitudes(a: string, aStart: number, b: string, bStart: number): number {
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

// ---------------------------------------------------------------------------------------------
// Requirements

/** Parse-time scratch for validating gt/lt values. */
const scratchInt: ParsedInt = { negative: false, start: 0 };

function newRequirement(key: string, raw: RawOperator, values: readonly string[]): RawRequirement | ParseError {
  // parseKeyAndInferOperator already validated the key; upstream's NewRequirement validates it
  // again, with the same result. The value counts are guaranteed by the grammar.
  if (raw === 'gt' || raw === 'lt') {
    const v = values[0] ?? '';
    if (!parseInt64Into(v, scratchInt)) {
      return new ParseError(`invalid value '${v}' for key '${key}': for 'Gt', 'Lt' operators, the value must be an integer`);
    }
  }
  for (const v of values) {
    const err = labelValueError(v);
    if (err !== undefined) return new ParseError(`${err} (key '${key}')`);
  }
  return { key, operator: raw, values };
}

/** Beyond this many values, in/notin look values up in a Set rather than scanning the array. */
const SET_THRESHOLD = 8;

const OP_IN = 0;
const OP_NOT_IN = 1;
const OP_EXISTS = 2;
const OP_DOES_NOT_EXIST = 3;
const OP_GT = 4;
const OP_LT = 5;

const hasOwn = Object.prototype.hasOwnProperty;

/** labels[key] if it is an own property (label keys such as "constructor" are valid). */
function lookup(labels: Labels, key: string): string | undefined {
  const v = labels[key];
  if (v === undefined) return undefined;
  return hasOwn.call(labels, key) ? v : undefined;
}

class CompiledRequirement {
  readonly #key: string;
  readonly #op: number;
  readonly #values: readonly string[];
  readonly #set: ReadonlySet<string> | undefined;
  /** gt/lt: the requirement's integer, and where its significant digits start. */
  readonly #intDigits: string;
  readonly #intStart: number;

  constructor(r: LabelRequirement) {
    this.#key = r.key;
    this.#values = r.values;
    this.#set = r.values.length > SET_THRESHOLD ? new Set(r.values) : undefined;
    this.#intDigits = '';
    this.#intStart = 0;
    switch (r.operator) {
      case 'in':
      case 'equals':
        this.#op = OP_IN;
        break;
      case 'notin':
      case 'notequals':
        this.#op = OP_NOT_IN;
        break;
      case 'exists':
        this.#op = OP_EXISTS;
        break;
      case 'doesnotexist':
        this.#op = OP_DOES_NOT_EXIST;
        break;
      case 'gt':
      case 'lt': {
        this.#op = r.operator === 'gt' ? OP_GT : OP_LT;
        const v = r.values[0] ?? '';
        // Validated at parse time: a label value that parses as int64 is unsigned digits.
        const parsed: ParsedInt = { negative: false, start: 0 };
        parseInt64Into(v, parsed);
        this.#intDigits = v;
        this.#intStart = parsed.start;
        break;
      }
    }
  }

  #hasValue(v: string): boolean {
    if (this.#set !== undefined) return this.#set.has(v);
    const values = this.#values;
    for (let i = 0; i < values.length; i++) {
      if (values[i] === v) return true;
    }
    return false;
  }

  matches(labels: Labels | undefined, scratch: ParsedInt): boolean {
    const v = labels === undefined ? undefined : lookup(labels, this.#key);
    switch (this.#op) {
      case OP_IN:
        return v !== undefined && this.#hasValue(v);
      case OP_NOT_IN:
        return v === undefined || !this.#hasValue(v);
      case OP_EXISTS:
        return v !== undefined;
      case OP_DOES_NOT_EXIST:
        return v === undefined;
      default: {
        // gt/lt: the key must be present and its value must parse as an int64.
        if (v === undefined || !parseInt64Into(v, scratch)) return false;
        // The requirement's integer is never negative.
        const cmp = scratch.negative ? -1 : compareMagnitudes(v, scratch.start, this.#intDigits, this.#intStart);
        return this.#op === OP_GT ? cmp > 0 : cmp < 0;
      }
    }
  }
}

class ParsedLabelSelector implements LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  readonly empty: boolean;
  readonly #compiled: readonly CompiledRequirement[];
  readonly #scratch: ParsedInt = { negative: false, start: 0 };

  constructor(requirements: readonly LabelRequirement[]) {
    this.requirements = Object.freeze(requirements.slice());
    this.empty = requirements.length === 0;
    this.#compiled = requirements.map((r) => new CompiledRequirement(r));
  }

  matches(labels: Labels | undefined): boolean {
    const compiled = this.#compiled;
    for (let i = 0; i < compiled.length; i++) {
      const r = compiled[i];
      if (r !== undefined && !r.matches(labels, this.#scratch)) return false;
    }
    return true;
  }

  requiredValue(key: string): string | undefined {
    for (const r of this.requirements) {
      if (r.key !== key) continue;
      if ((r.operator === 'equals' || r.operator === 'in') && r.values.length === 1) return r.values[0];
    }
    return undefined;
  }
}

const EVERYTHING: LabelSelector = new ParsedLabelSelector([]);

/**
 * Parses a label selector as upstream labels.Parse does. Returns `{ error }` for any input upstream
 * rejects (the wording is not upstream's; callers should let the apiserver answer those requests).
 */
export function parseLabelSelector(s: string): LabelSelector | LabelSelectorError {
  const parsed = new Parser(s).parse();
  if (parsed instanceof ParseError) return { error: parsed.message };
  if (parsed.length === 0) return EVERYTHING;
  const requirements: LabelRequirement[] = parsed.map((r) =>
    Object.freeze({
      key: r.key,
      operator: r.operator === 'doubleequals' ? 'equals' : r.operator,
      values: Object.freeze(r.values.slice()),
    }),
  );
  // Upstream sorts by key with sort.Sort (not stable); equal keys keep input order here.
  requirements.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return new ParsedLabelSelector(requirements);
}

/** Type guard for the error side of parseLabelSelector's result. */
export function isLabelSelectorError(r: LabelSelector | LabelSelectorError): r is LabelSelectorError {
  return 'error' in r;
}
