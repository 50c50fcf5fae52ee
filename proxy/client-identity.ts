// Who the client is, as far as the proxy must know: a client certificate verified against
// --client-ca-file is forwarded under the proxy's own credentials with Impersonate-* headers,
// because a TLS client certificate cannot be passed on. Everything else passes through as sent.
import { createHash } from 'node:crypto';
import type { ClientRequest } from './client-http.js';
import { TLSSocket } from 'node:tls';
import { clientImpersonation } from './client-impersonation.js';

export type Forwarding =
  | { readonly kind: 'passthrough' }
  | { readonly kind: 'impersonate'; readonly user: string; readonly groups: readonly string[]; readonly credentialId: string }
  | { readonly kind: 'reject'; readonly code: 400 | 401 | 403; readonly reason: string; readonly message: string };

interface CertIdentity {
  readonly user: string;
  readonly groups: readonly string[];
  /** As kube-apiserver's x509 authenticator sets it: X509SHA256=<hex sha256 of the certificate>. */
  readonly credentialId: string;
}

const certIdentities = new WeakMap<TLSSocket, CertIdentity | 'invalid' | 'none'>();

function peerIdentity(socket: TLSSocket): CertIdentity | 'invalid' | 'none' {
  const cached = certIdentities.get(socket);
  if (cached !== undefined) return cached;
  let result: CertIdentity | 'invalid' | 'none' = 'none';
  const cert = socket.getPeerCertificate();
  if (cert && Object.keys(cert).length > 0) {
    const cn = cert.subject?.CN;
    const o = cert.subject?.O;
    const user = Array.isArray(cn) ? cn[0] : cn;
    if (!socket.authorized || !user) result = 'invalid';
    else {
      const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
      result = { user, groups, credentialId: `X509SHA256=${createHash('sha256').update(cert.raw).digest('hex')}` };
    }
  }
  certIdentities.set(socket, result);
  return result;
}

/** Decides how a request is forwarded. Certificates are only considered when a client CA is configured. */
export function resolveForwarding(req: ClientRequest, clientCertsEnabled: boolean): Forwarding {
  const socket = req.socket;
  if (!clientCertsEnabled || !(socket instanceof TLSSocket)) return { kind: 'passthrough' };
  const id = peerIdentity(socket);
  if (id === 'none') return { kind: 'passthrough' };
  if (id === 'invalid') {
    // kube-apiserver fails authentication when a presented certificate does not verify and no
    // other credential succeeds; with a bearer token the apiserver decides on the token.
    if (req.headers.authorization) return { kind: 'passthrough' };
    return { kind: 'reject', code: 401, reason: 'Unauthorized', message: 'Unauthorized' };
  }
  // The client's own Impersonate-* headers, read as the apiserver reads them: those that request
  // nothing are dropped in forwardingEdits, a malformed request gets the apiserver's 400, and a real
  // impersonation is refused (the apiserver would check the certificate user's permission, which the
  // proxy's own impersonation rights must never stand in for).
  const own = clientImpersonation(req.rawHeaders);
  if (own.kind === 'bad-request') return { kind: 'reject', code: 400, reason: 'BadRequest', message: own.message };
  if (own.kind === 'impersonating') {
    return {
      kind: 'reject', code: 403, reason: 'Forbidden',
      message: `kube-cache-proxy: clients authenticated by certificate cannot impersonate (user "${id.user}")`,
    };
  }
  return { kind: 'impersonate', ...id };
}

/** The Impersonate-* headers for an impersonating forward. */
export function impersonationHeaders(f: CertIdentity): Array<readonly [string, string]> {
  return [
    ['Impersonate-User', f.user],
    ...f.groups.map((g) => ['Impersonate-Group', g] as const),
    ['Impersonate-Extra-Authentication.kubernetes.io%2fcredential-id', f.credentialId],
  ];
}
