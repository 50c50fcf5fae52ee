// Authentication and authorization of /metrics on the metrics port (`--metrics-mode tls-authn`), as
// Kubernetes components delegate them (kube-controller-manager's --authentication-kubeconfig and
// --authorization-kubeconfig, kube-rbac-proxy): the client's bearer token is authenticated by a
// TokenReview, or its client certificate verified against --client-ca-file (CN the user, O the
// groups); then a SubjectAccessReview with nonResourceAttributes {path: "/metrics", verb: "get"}
// for that user decides. Both are created with the proxy's own credentials (proxy/local-review.ts)
// and remembered briefly, in bounded LRUs keyed by a SHA-256 of the credential, never the token.
// Refusals are the apiserver's own Status bodies: 401 Unauthorized, and 403 with the message
// kube-apiserver writes for a non-resource path ("forbidden: User "x" cannot get path "/metrics"").
import type { IncomingMessage } from 'node:http';
import { goJson, goQuote, sanitize, UNAUTHORIZED_BODY as UNAUTHORIZED } from './forbidden.js';
import { resolveForwarding } from './client-identity.js';
import { localCredential } from './local-access.js';
import { LocalAuthenticator, type UserInfo } from './local-authn.js';
import { decisionFrom, type Decision } from './local-authz.js';
import type { PostReview } from './local-review.js';
import { TtlMemo } from './ttl-memo.js';

/** How long an authenticated token and an allowed decision are remembered: the longest a revocation takes. */
export const METRICS_AUTH_ALLOWED_TTL_MS = 5_000;
/** How long a failed authentication and a refusal are remembered: the longest a new grant takes. */
export const METRICS_AUTH_DENIED_TTL_MS = 2_000;

export type MetricsVerdict =
  | { readonly code: 200; readonly user: string }
  | { readonly code: 401 | 403 | 500; readonly body: string; readonly why: string };

const status = (code: number, reason: string, message: string, details?: Record<string, string>): string =>
  goJson({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });

/** kube-apiserver's 403 for a non-resource request: NewForbidden(empty resource, "", forbiddenMessage[: reason]). */
export function nonResourceForbiddenBody(user: string, verb: string, path: string, reason: string): string {
  const msg = sanitize(`User ${goQuote(user)} cannot ${verb} path ${goQuote(path)}`) + (reason ? `: ${reason}` : '');
  return status(403, 'Forbidden', `forbidden: ${msg}`, {});
}

export function nonResourceAccessReview(user: UserInfo, verb: string, path: string): unknown {
  return {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: { nonResourceAttributes: { path, verb }, user: user.username, groups: user.groups, extra: user.extra, uid: user.uid },
  };
}

export interface MetricsAuthOptions {
  readonly post: PostReview;
  /** Whether client certificates verified against --client-ca-file authenticate. */
  readonly clientCerts: boolean;
  readonly allowedTtlMs?: number;
  readonly deniedTtlMs?: number;
  readonly max?: number;
  readonly now?: () => number;
  /** A review that came back without an answer (the proxy's RBAC, the apiserver unreachable): why. */
  readonly onReviewError?: (why: string) => void;
}

export class MetricsAuth {
  readonly #authn: LocalAuthenticator;
  readonly #decisions: TtlMemo<Decision>;
  readonly #post: PostReview;
  readonly #clientCerts: boolean;
  readonly #ttls: { readonly allowedMs: number; readonly deniedMs: number };
  readonly #onReviewError: (why: string) => void;

  constructor(o: MetricsAuthOptions) {
    this.#post = o.post;
    this.#clientCerts = o.clientCerts;
    this.#onReviewError = o.onReviewError ?? (() => undefined);
    this.#ttls = { allowedMs: o.allowedTtlMs ?? METRICS_AUTH_ALLOWED_TTL_MS, deniedMs: o.deniedTtlMs ?? METRICS_AUTH_DENIED_TTL_MS };
    const now = o.now ? { now: o.now } : {};
    this.#authn = new LocalAuthenticator({ post: o.post, ttls: this.#ttls, max: o.max ?? 1_000, ...now });
    this.#decisions = new TtlMemo<Decision>({ max: o.max ?? 1_000, ...now });
  }

  /** Whether this request may `verb` `path`. */
  async check(req: IncomingMessage, verb: string, path: string): Promise<MetricsVerdict> {
    const v = await this.#check(req, verb, path);
    if (v.code !== 200 && /^(token|access)_review_/.test(v.why)) this.#onReviewError(v.why);
    return v;
  }

  async #check(req: IncomingMessage, verb: string, path: string): Promise<MetricsVerdict> {
    const f = resolveForwarding(req, this.#clientCerts);
    // A certificate that does not verify (and no token): 401. A verified one refused for its
    // Impersonate-* headers: the refusal below, as for a token client.
    if (f.kind === 'reject' && f.code === 401) return { code: 401, body: UNAUTHORIZED, why: 'certificate' };
    const cred = f.kind === 'reject' ? 'impersonation' : localCredential(req, f);
    // Impersonate-* headers: the metrics port does not impersonate (no scraper needs it).
    if (cred === 'impersonation') return { code: 403, body: status(403, 'Forbidden', 'forbidden: impersonation is not supported on the metrics port', {}), why: cred };
    if (typeof cred === 'string') return { code: 401, body: UNAUTHORIZED, why: cred };
    let user: UserInfo;
    if (cred.kind === 'token') {
      const a = await this.#authn.authenticate(cred.hash, cred.token);
      // As kube-apiserver's delegated authentication: a TokenReview that fails is a failed authentication.
      if (a.value.kind !== 'user') return { code: 401, body: UNAUTHORIZED, why: a.value.kind === 'error' ? `token_review_${a.value.reason}` : 'unauthenticated' };
      user = a.value.user;
    } else {
      user = cred.user;
    }
    const d = await this.#decisions.resolve(JSON.stringify([cred.hash, verb, path]), async () => {
      const r = await this.#post('/apis/authorization.k8s.io/v1/subjectaccessreviews', nonResourceAccessReview(user, verb, path));
      const value: Decision = r.ok ? decisionFrom(r.status) : { kind: 'error', reason: r.reason };
      return { value, ttlMs: value.kind === 'allowed' ? this.#ttls.allowedMs : value.kind === 'denied' ? this.#ttls.deniedMs : 0 };
    });
    if (d.value.kind === 'allowed') return { code: 200, user: user.username };
    if (d.value.kind === 'denied') return { code: 403, body: nonResourceForbiddenBody(user.username, verb, path, d.value.reason), why: 'denied' };
    // As kube-apiserver's authorization filter: an authorizer error is a 500.
    return { code: 500, body: status(500, 'InternalError', `Internal error occurred: authorization of ${path} failed`, {}), why: `access_review_${d.value.reason}` };
  }
}

