// JSON.parse's SyntaxError quotes the input around the fault (V8: `Unexpected token 'c', "…"... is
// not valid JSON`). What the cache parses may be a Secret, or metadata whose
// kubectl.kubernetes.io/last-applied-configuration annotation holds one; its errors end up in logs
// ("watch failed", "serving from the cache failed"). Parsed here, an error says where, never what.

/** JSON.parse, whose SyntaxError carries no part of `text`. */
export function parseJsonWithheld(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(withheldJsonError(err));
  }
}

/** A JSON.parse error's message without the input it quotes: the position, if it gave one. */
export function withheldJsonError(err: unknown): string {
  const m = err instanceof Error ? /at position (\d+)/.exec(err.message) : null;
  return m ? `invalid JSON at position ${m[1] ?? ''}` : 'invalid JSON';
}
