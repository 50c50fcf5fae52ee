// What kube-apiserver makes of a client's own Impersonate-* headers before it checks any permission
// (processImpersonationHeaders of k8s.io/apiserver's constrained impersonation filter, the default
// since 1.36): no user, uid, group or extra requested is no impersonation at all (the request is the
// client's own); a uid, group or extra without a user is a 400; anything else is an impersonation,
// whose permission checks the proxy does not make for certificate clients (it refuses those).
import { goQuote } from './forbidden.js';

export type ClientImpersonation =
  | { readonly kind: 'none' }
  | { readonly kind: 'bad-request'; readonly message: string }
  | { readonly kind: 'impersonating'; readonly user: string };

const EXTRA_PREFIX = 'impersonate-extra-';

// Header values reach Node as latin1 strings: one char per byte, as Go holds them (a byte string).

/** Go's url.PathUnescape (to a byte string), or the key as it is when that fails (unescapeExtraKey). */
function unescapeExtraKey(key: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(key)) return key;
  return key.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const REPLACEMENT = Buffer.from([0xef, 0xbf, 0xbd]);

/** Go's strconv.Quote of a byte string: valid UTF-8 as goQuote prints it, any other byte as \xNN. */
function goQuoteBytes(latin1: string): string {
  const b = Buffer.from(latin1, 'latin1');
  let out = '';
  for (let i = 0; i < b.length;) {
    const lead = b[i] ?? 0;
    const n = lead < 0x80 ? 1 : lead >= 0xc2 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf5 ? 4 : 0;
    const seq = n > 0 ? b.subarray(i, i + n) : undefined;
    const ch = seq && seq.length === n && seq.subarray(1).every((c) => (c & 0xc0) === 0x80) ? seq.toString('utf8') : undefined;
    const replaced = ch !== undefined && ch === '\ufffd' && !(seq?.equals(REPLACEMENT) ?? false);
    if (ch === undefined || replaced) {
      out += `\\x${lead.toString(16).padStart(2, '0')}`;
      i += 1;
    } else {
      out += goQuote(ch).slice(1, -1);
      i += n;
    }
  }
  return `"${out}"`;
}

/** Go's %#v of a []string. */
function goStrings(xs: readonly string[] | undefined): string {
  return xs === undefined ? '[]string(nil)' : `[]string{${xs.map(goQuoteBytes).join(', ')}}`;
}

/** Go's %#v of a map[string][]string (keys sorted bytewise, as fmt prints maps). */
function goExtra(extra: ReadonlyMap<string, string[]>): string {
  if (extra.size === 0) return 'map[string][]string(nil)';
  const keys = [...extra.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
  return `map[string][]string{${keys.map((k) => `${goQuoteBytes(k)}:${goStrings(extra.get(k))}`).join(', ')}}`;
}

/** The client's impersonation request, read from its raw headers as Go's http.Header holds them. */
export function clientImpersonation(rawHeaders: readonly string[]): ClientImpersonation {
  let user: string | undefined;
  let uid: string | undefined;
  let groups: string[] | undefined;
  const extra = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    const value = rawHeaders[i + 1] ?? '';
    // Header.Get: the first line of each.
    if (name === 'impersonate-user') user ??= value;
    else if (name === 'impersonate-uid') uid ??= value;
    else if (name === 'impersonate-group') (groups ??= []).push(value);
    else if (name.startsWith(EXTRA_PREFIX)) {
      const key = unescapeExtraKey(name.slice(EXTRA_PREFIX.length));
      const values = extra.get(key) ?? [];
      values.push(value);
      extra.set(key, values);
    }
  }
  const hasUser = (user ?? '') !== '';
  if (hasUser) return { kind: 'impersonating', user: user ?? '' };
  if ((uid ?? '') !== '' || groups !== undefined || extra.size > 0) {
    const wanted = `&user.DefaultInfo{Name:"", UID:${goQuoteBytes(uid ?? '')}, Groups:${goStrings(groups)}, Extra:${goExtra(extra)}}`;
    return { kind: 'bad-request', message: `requested ${wanted} without impersonating a user name` };
  }
  return { kind: 'none' };
}

/** The lowercase names of every Impersonate-* header the client sent, to drop before forwarding. */
export function clientImpersonationHeaderNames(rawHeaders: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    if (name.startsWith('impersonate-')) out.add(name);
  }
  return out;
}
