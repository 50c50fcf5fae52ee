// The absolute-form request target (`GET https://other/api/v1/pods HTTP/1.1`, RFC 9112 §3.2.2):
// Go's server, and so kube-apiserver, serves it by its path and query, whatever the authority names.
// The proxy does the same: the target is rewritten to its origin form before anything else reads it,
// and the authority is never used (requests go to the configured apiservers only). An authority
// that Go's url.ParseRequestURI refuses (a bad port, an unclosed IPv6 bracket, bad userinfo or
// escapes) is a 400, as Go answers it.

export type TargetForm =
  | { readonly kind: 'origin'; readonly target: string }
  | { readonly kind: 'invalid' };

const SCHEME_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?]*)/;

/** Go's validUserinfo. */
function validUserinfo(s: string): boolean {
  return /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(s);
}

/** Go's validOptionalPort: empty, or ':' and digits. */
function validOptionalPort(s: string): boolean {
  return s === '' || /^:[0-9]*$/.test(s);
}

/** Go's parseHost, as far as it accepts or refuses. */
function validHost(host: string): boolean {
  if (/%(?![0-9A-Fa-f]{2})/.test(host)) return false;
  // unescape(host, encodeHost): an escaped ASCII byte other than %25 is refused.
  if (!host.startsWith('[') && /%(?!25)[0-7][0-9A-Fa-f]/.test(host)) return false;
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0) return false;
    return validOptionalPort(host.slice(close + 1));
  }
  const colon = host.lastIndexOf(':');
  // Since Go 1.25 a colon in an unbracketed host (an IPv6 address without brackets) is refused too.
  if (host.indexOf(':') !== colon) return false;
  return colon < 0 || validOptionalPort(host.slice(colon));
}

/**
 * The origin-form target (path and query) of an absolute-form target; `undefined` when `target` is
 * not in absolute form (origin form, `*`, or something else, judged elsewhere).
 */
export function originForm(target: string): TargetForm | undefined {
  const m = SCHEME_AUTHORITY.exec(target);
  if (!m) return undefined;
  const authority = m[1] ?? '';
  const at = authority.lastIndexOf('@');
  if (at >= 0 && !validUserinfo(authority.slice(0, at))) return { kind: 'invalid' };
  if (!validHost(at >= 0 ? authority.slice(at + 1) : authority)) return { kind: 'invalid' };
  const rest = target.slice(m[0].length);
  // An empty path (`http://host` or `http://host?x`) has no origin form: left to be refused.
  if (!rest.startsWith('/')) return undefined;
  return { kind: 'origin', target: rest };
}

/**
 * Rewrites an absolute-form `req.url` to its origin form in place, so that every later reader (request
 * info, cache, flow control, the forward itself) sees the path; false when the authority is invalid.
 */
export function normalizeTarget(req: { url?: string | undefined }): boolean {
  const form = originForm(req.url ?? '');
  if (form === undefined) return true;
  if (form.kind === 'invalid') return false;
  req.url = form.target;
  return true;
}
