// `local` authorization mode for reads the cache serves: the client's credential is authenticated
// (TokenReview, or the verified client certificate) and the read authorized (SubjectAccessReview)
// by the apiserver on the proxy's request, and both answers are remembered for the configured TTLs
// (allowed ones longer, refusals shorter). A refusal is answered as the apiserver answers it. Reads
// the proxy cannot judge this way go the probe's way instead: Impersonate-* headers (the apiserver's
// impersonation rules are its own), no credentials (anonymous), a credential that is not a plain
// bearer token, and any review that did not come back with an answer. Nothing is served from the
// cache unless a review said allowed.
import { Counter, type Registry } from 'prom-client';
import type { ClientRequest, ClientResponse } from './client-http.js';
import type { RequestInfo } from './request-info.js';
import type { Forwarding } from './client-identity.js';
import { hasImpersonationHeaders } from './headers.js';
import { certificateUser, credentialHash, LocalAuthenticator, type UserInfo } from './local-authn.js';
import { LocalAuthorizer, type ReadAttributes } from './local-authz.js';
import { forbiddenBody, UNAUTHORIZED_BODY, writeRefusal } from './forbidden.js';
import type { PostReview } from './local-review.js';

export type Access =
  | { readonly kind: 'allowed' }
  | { readonly kind: 'refused'; readonly code: 401 | 403; readonly bytes: number }
  | { readonly kind: 'fallback'; readonly reason: string };

type Credential = { readonly kind: 'token'; readonly hash: string; readonly token: string } | { readonly kind: 'user'; readonly hash: string; readonly user: UserInfo };

/** The credential the apiserver would authenticate, when the proxy can judge it; else why not. */
export function localCredential(req: ClientRequest, f: Forwarding): Credential | string {
  if (hasImpersonationHeaders(req.rawHeaders)) return 'impersonation';
  if (f.kind === 'impersonate') return { kind: 'user', hash: credentialHash('cert', f.credentialId, f.user, ...f.groups), user: certificateUser(f.user, f.groups, f.credentialId) };
  const auth = req.headersDistinct['authorization'];
  if (auth === undefined || auth.length === 0) return 'anonymous';
  // kube-apiserver's bearer token authenticator: "Bearer <token>" ("bearer" in any case), trimmed.
  // Anything else (two header lines, Basic, stray spaces) is left to the apiserver.
  const m = auth.length === 1 ? /^[Bb][Ee][Aa][Rr][Ee][Rr] ([^ ]+)$/.exec((auth[0] ?? '').trim()) : null;
  if (!m?.[1]) return 'credential_form';
  return { kind: 'token', hash: credentialHash('token', m[1]), token: m[1] };
}

export function readAttributes(info: RequestInfo): ReadAttributes {
  return {
    verb: info.verb, group: info.apiGroup, version: info.apiVersion, resource: info.resource, subresource: info.subresource,
    namespace: info.namespace, name: info.name, fieldSelector: info.fieldSelector, labelSelector: info.labelSelector,
  };
}

export class LocalAccess {
  readonly #authn: LocalAuthenticator;
  readonly #authz: LocalAuthorizer;
  readonly #decisions: Counter<'decision' | 'cached'>;

  constructor(o: { post: PostReview; allowedTtlSeconds: number; deniedTtlSeconds: number; registry: Registry; now?: () => number }) {
    const reviews = new Counter({
      name: 'kube_cache_proxy_authorization_reviews_total',
      help: 'TokenReviews and SubjectAccessReviews sent in local authorization mode, by kind and result.',
      labelNames: ['kind', 'result'] as const,
      registers: [o.registry],
    });
    this.#decisions = new Counter({
      name: 'kube_cache_proxy_authorization_decisions_total',
      help: 'Cache-served reads judged in local authorization mode: allowed, unauthorized (401), forbidden (403), or fallback to the probe; cached: from a remembered review.',
      labelNames: ['decision', 'cached'] as const,
      registers: [o.registry],
    });
    const ttls = { allowedMs: o.allowedTtlSeconds * 1000, deniedMs: o.deniedTtlSeconds * 1000 };
    const now = o.now ? { now: o.now } : {};
    this.#authn = new LocalAuthenticator({ post: o.post, ttls, max: 10_000, ...now, observe: (result) => reviews.inc({ kind: 'token', result }) });
    this.#authz = new LocalAuthorizer({ post: o.post, ttls, max: 100_000, ...now, observe: (result) => reviews.inc({ kind: 'subjectaccess', result }) });
  }

  /** Judges the read; a refusal is written to `res` here. */
  async check(req: ClientRequest, res: ClientResponse, info: RequestInfo, f: Forwarding): Promise<Access> {
    const cred = localCredential(req, f);
    if (typeof cred === 'string') return this.#fallback(cred);
    let user: UserInfo;
    let cached = true;
    if (cred.kind === 'token') {
      const a = await this.#authn.authenticate(cred.hash, cred.token);
      cached = a.cached;
      if (a.value.kind === 'error') return this.#fallback(`token_review_${a.value.reason}`);
      if (a.value.kind === 'unauthenticated') {
        this.#decisions.inc({ decision: 'unauthorized', cached: String(a.cached) });
        return { kind: 'refused', code: 401, bytes: writeRefusal(res, 401, UNAUTHORIZED_BODY) };
      }
      user = a.value.user;
    } else {
      user = cred.user;
    }
    const attrs = readAttributes(info);
    const d = await this.#authz.authorize(cred.hash, user, attrs);
    cached &&= d.cached;
    if (d.value.kind === 'error') return this.#fallback(`access_review_${d.value.reason}`);
    if (d.value.kind === 'denied') {
      this.#decisions.inc({ decision: 'forbidden', cached: String(cached) });
      const body = forbiddenBody({ user: user.username, ...attrs }, d.value.reason);
      return { kind: 'refused', code: 403, bytes: writeRefusal(res, 403, body) };
    }
    this.#decisions.inc({ decision: 'allowed', cached: String(cached) });
    return { kind: 'allowed' };
  }

  #fallback(reason: string): Access {
    this.#decisions.inc({ decision: 'fallback', cached: 'false' });
    return { kind: 'fallback', reason };
  }
}
