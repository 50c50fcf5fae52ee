// The parser of label selectors, a transliteration of upstream's (k8s.io/apimachinery
// pkg/labels/selector.go: Parser, NewRequirement), quirks included, so that every string upstream
// accepts is accepted here with the same meaning and every string it rejects is rejected:
//  - "in" and "notin" are keywords only where an operator is expected, identifiers elsewhere;
//  - set values are deduplicated and sorted ("()" is the set {""}, "(a,)" is {"", "a"});
//  - keys and values are validated as upstream validates them (label-validation.ts), gt/lt values
//    must parse as int64 (int64.ts).
// The requirements come out in input order; label-selector.ts sorts them.
//
// Pure: no I/O, no imports from other project folders.
import type { LabelOperator } from './label-selector.js';
import {
  EOS_ITEM,
  Lexer,
  TOK_CLOSED_PAR,
  TOK_COMMA,
  TOK_DOES_NOT_EXIST,
  TOK_DOUBLE_EQUALS,
  TOK_EOS,
  TOK_EQUALS,
  TOK_GREATER_THAN,
  TOK_IDENTIFIER,
  TOK_IN,
  TOK_LESS_THAN,
  TOK_NOT_EQUALS,
  TOK_NOT_IN,
  TOK_OPEN_PAR,
  type ScannedItem,
} from './label-selector-lexer.js';
import { labelKeyError, labelValueError } from './label-validation.js';
import { parseInt64Into, type ParsedInt } from './int64.js';

const CTX_KEY_AND_OPERATOR = 0;
const CTX_VALUES = 1;
type ParserContext = typeof CTX_KEY_AND_OPERATOR | typeof CTX_VALUES;

/** Upstream's selection.Operator, before "=" and "==" are merged. */
export type RawOperator = LabelOperator | 'doubleequals';

export interface RawRequirement {
  readonly key: string;
  readonly operator: RawOperator;
  readonly values: readonly string[];
}

export class ParseError {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

export class Parser {
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
