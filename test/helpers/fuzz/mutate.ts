// Byte-level mutations of a string (a path, a query, a header value), for the fuzz test's garbage
// cases. Characters a client library refuses to send are percent-escaped by `printable`.
import type { Rng } from '../prng.js';

const SPECIALS = ['%', '%2', '%zz', '%00', '%2F', '%2f', '%25', '%c3%28', '%ff', '&', '=', '==', '?', '#', ';', ',', '/', '//', '/./', '/../', '..', '+', ' ',
  '\\', '"', "'", '<', '>', '{', '}', '[', ']', '|', '^', '`', '~', '!', '*', '(', ')', '$', '@', ':', '\u00e9', '\u2028', '\ud83d\ude00', '\u0000', '\t', '\u007f'];

function randomText(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += rng.chance(0.7) ? String.fromCharCode(rng.between(0x20, 0x7e)) : rng.pick(SPECIALS);
  return s;
}

/** encodeURIComponent, with a lone surrogate (which it refuses) as U+FFFD. */
function escape(s: string): string {
  return encodeURIComponent(s.replace(/[\ud800-\udfff]/gu, '\ufffd'));
}

/** One to three random edits of `s`. */
export function mutate(rng: Rng, s: string): string {
  let out = s;
  const edits = rng.between(1, 3);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(out.length + 1);
    switch (rng.int(9)) {
      case 0: out = out.slice(0, at) + rng.pick(SPECIALS) + out.slice(at); break;
      case 1: out = out.slice(0, at) + out.slice(at + rng.between(1, 8)); break;
      case 2: out = out.slice(0, at) + randomText(rng, rng.between(1, 12)) + out.slice(at); break;
      case 3: out = out.slice(0, at) + out.slice(at).toUpperCase(); break;
      case 4: out = out.slice(0, at) + out.slice(Math.max(0, at - 6), at) + out.slice(at); break;
      case 5: out = out.slice(0, at) + 'x'.repeat(rng.pick([64, 253, 254, 1000, 4096, 9000])) + out.slice(at); break;
      case 6: out = out.slice(0, at); break;
      case 7: out = out.slice(0, at) + escape(out.slice(at, at + 4)) + out.slice(at + 4); break;
      default: out = out.slice(0, at) + String.fromCharCode(rng.int(0x110)) + out.slice(at);
    }
  }
  return out;
}

/** `s` with what an HTTP client would refuse in a request target (controls, spaces, non-ASCII) percent-escaped. */
export function printable(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    out += c <= 0x20 || c >= 0x7f || ch === '#' ? escape(ch) : ch;
  }
  return out;
}

/** A header value an HTTP client sends (visible ASCII, spaces and tabs inside). */
export function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e\t]/g, '?').trim();
}
