// Header rewriting between client and apiserver: hop-by-hop headers stripped (RFC 9110 §7.6.1),
// duplicates kept (Impersonate-Group, Warning), Host left to the upstream connection. The client
// may speak HTTP/2, the apiserver is spoken to in HTTP/1.1: HTTP/2's pseudo-headers are not passed
// on, and the connection-specific headers stripped from responses are those HTTP/2 forbids
// (RFC 9113 §8.2.2), which Node refuses to send.

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'http2-settings',
]);

/**
 * The headers of kube-apiserver's requestheader authentication, under the names kubeadm and the
 * docs configure (--requestheader-username-headers=X-Remote-User, -group-headers=X-Remote-Group,
 * -uid-headers=X-Remote-Uid, -extra-headers-prefix=X-Remote-Extra-). The apiserver believes them
 * only from a front proxy's client certificate; should the proxy's own credentials be such a
 * certificate, a client's copies would name any user it likes. The apiserver ignores them from
 * anyone else, so dropping them changes no other answer.
 */
const REQUEST_HEADER_AUTH = /^x-remote-(?:user|group|uid|extra-)/;

/** Names listed in a Connection header are hop-by-hop too. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase() !== 'connection') continue;
    for (const t of (rawHeaders[i + 1] ?? '').split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok) out.add(tok);
    }
  }
  return out;
}

export interface RequestHeaderEdits {
  /** Drop these (lowercase) header names as well, e.g. authorization when impersonating. */
  readonly drop?: ReadonlySet<string>;
  /** Append these headers. */
  readonly add?: ReadonlyArray<readonly [string, string]>;
  /** Keep Connection/Upgrade (for upgrade requests). */
  readonly keepUpgrade?: boolean;
}

/** Client request headers to send upstream, as a flat [name, value, …] list. */
export function upstreamRequestHeaders(rawHeaders: readonly string[], edits: RequestHeaderEdits = {}): string[] {
  const listed = connectionTokens(rawHeaders);
  const out: string[] = [];
  let upgrade: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const value = rawHeaders[i + 1] ?? '';
    const lower = name.toLowerCase();
    if (lower === 'upgrade') upgrade = value;
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are the request line, not headers.
    if (lower.startsWith(':') || HOP_BY_HOP.has(lower) || (listed.has(lower) && lower !== 'upgrade') || edits.drop?.has(lower)) continue;
    if (REQUEST_HEADER_AUTH.test(lower)) continue;
    out.push(name, value);
  }
  if (edits.keepUpgrade && upgrade !== undefined) out.push('Connection', 'Upgrade', 'Upgrade', upgrade);
  for (const [k, v] of edits.add ?? []) out.push(k, v);
  return out;
}

/** Upstream response headers to send to the client. */
export function clientResponseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = new Set<string>();
  const conn = headers['connection'];
  for (const c of Array.isArray(conn) ? conn : conn ? [conn] : []) {
    for (const t of c.split(',')) listed.add(t.trim().toLowerCase());
  }
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** True when the client sent any Impersonate-* header. */
export function hasImpersonationHeaders(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] ?? '').toLowerCase().startsWith('impersonate-')) return true;
  }
  return false;
}
