// resourceVersion is parsed once, at the edge, into a bigint; compared as bigint everywhere else.

/** A positive decimal resourceVersion, or undefined for anything else ("", "0", garbage). */
export function parseResourceVersion(v: unknown): bigint | undefined {
  if (typeof v !== 'string' || !/^[1-9][0-9]{0,19}$/.test(v)) return undefined;
  return BigInt(v);
}
