// How a forwarded request's headers change with the client's identity: X-Forwarded-For appended,
// and for certificate clients the proxy's credentials plus Impersonate-* instead of the client's.
import type { ClientRequest } from './client-http.js';
import { impersonationHeaders, type Forwarding } from './client-identity.js';
import { clientImpersonationHeaderNames } from './client-impersonation.js';
import type { ProxyContext } from './context.js';

export function forwardedFor(req: ClientRequest): readonly [string, string] {
  const prior = req.headers['x-forwarded-for'];
  const addr = req.socket.remoteAddress ?? '';
  return ['X-Forwarded-For', prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${addr}` : addr];
}

function sameGroups(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((g, i) => g === y[i]);
}

/** Header edits for a request forwarded as `f`: impersonation replaces the client's credentials. */
export function forwardingEdits(req: ClientRequest, f: Forwarding, ctx: ProxyContext): { drop?: ReadonlySet<string>; add: Array<readonly [string, string]> } {
  const add: Array<readonly [string, string]> = [forwardedFor(req)];
  if (f.kind !== 'impersonate') return { drop: new Set(['x-forwarded-for']), add };
  // The proxy's own (only) credential is a certificate for this very user and groups: forwarding on
  // it is that identity already, and impersonating oneself would need the impersonate permission.
  // The client's Impersonate-* headers (any left here request nothing) never go along with the proxy's.
  const drop = new Set(['authorization', 'x-forwarded-for', ...clientImpersonationHeaderNames(req.rawHeaders)]);
  const own = ctx.upstreams.credentials.certificateIdentity?.();
  if (own && own.user === f.user && sameGroups(own.groups, f.groups)) {
    return { drop, add };
  }
  const auth = ctx.upstreams.credentials.authorization();
  if (auth) add.push(['Authorization', auth]);
  add.push(...impersonationHeaders(f));
  return { drop, add };
}

