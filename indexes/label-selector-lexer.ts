// The lexer of label selectors, a transliteration of upstream's (k8s.io/apimachinery
// pkg/labels/selector.go: Lexer, its tokens and string2token), quirks included:
//  - whitespace is only ' ', '\t', '\r', '\n';
//  - a NUL character where a token would start ends the input (the rest is ignored), and a NUL
//    inside an identifier or after an operator is a separator (upstream's read() returns 0 both at
//    the end of the string and for a NUL byte);
//  - "in" and "notin" are always scanned as keywords; the parser reads them as identifiers where
//    an operator is not expected.
// Upstream works on UTF-8 bytes and this on UTF-16 code units; the results agree because every
// character that matters to the grammar is ASCII.
//
// Pure: no I/O, no imports from other project folders.

export const TOK_ERROR = 0;
export const TOK_EOS = 1;
export const TOK_CLOSED_PAR = 2;
export const TOK_COMMA = 3;
export const TOK_DOES_NOT_EXIST = 4;
export const TOK_DOUBLE_EQUALS = 5;
export const TOK_EQUALS = 6;
export const TOK_GREATER_THAN = 7;
export const TOK_IDENTIFIER = 8;
export const TOK_IN = 9;
export const TOK_LESS_THAN = 10;
export const TOK_NOT_EQUALS = 11;
export const TOK_NOT_IN = 12;
export const TOK_OPEN_PAR = 13;

export type Token = number;

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

export interface ScannedItem {
  readonly tok: Token;
  readonly lit: string;
}

export const EOS_ITEM: ScannedItem = { tok: TOK_EOS, lit: '' };

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

export class Lexer {
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
