// Authorization in `local` mode: a SubjectAccessReview with the user's identity and the read's
// attributes — those kube-apiserver's authorizers see, selectors included (the Node authorizer lets
// system:node:X list and watch pods only with spec.nodeName=X) — remembered under the credential's
// hash and the attributes.
import type { PostReview } from './local-review.js';
import type { Ttls, UserInfo } from './local-authn.js';
import { TtlMemo } from './ttl-memo.js';

export interface ReadAttributes {
  readonly verb: string;
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
  readonly fieldSelector: string;
  readonly labelSelector: string;
}

export type Decision =
  | { readonly kind: 'allowed' }
  | { readonly kind: 'denied'; readonly reason: string }
  | { readonly kind: 'error'; readonly reason: string };

export function decisionKey(credential: string, a: ReadAttributes): string {
  return JSON.stringify([credential, a.verb, a.group, a.version, a.resource, a.subresource, a.namespace, a.name, a.fieldSelector, a.labelSelector]);
}

export function subjectAccessReview(user: UserInfo, a: ReadAttributes): unknown {
  const resourceAttributes: Record<string, unknown> = { verb: a.verb, group: a.group, version: a.version, resource: a.resource };
  if (a.subresource) resourceAttributes['subresource'] = a.subresource;
  if (a.namespace) resourceAttributes['namespace'] = a.namespace;
  if (a.name) resourceAttributes['name'] = a.name;
  if (a.fieldSelector) resourceAttributes['fieldSelector'] = { rawSelector: a.fieldSelector };
  if (a.labelSelector) resourceAttributes['labelSelector'] = { rawSelector: a.labelSelector };
  return {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: { resourceAttributes, user: user.username, groups: user.groups, extra: user.extra, uid: user.uid },
  };
}

/**
 * A SubjectAccessReview's status. Not allowed with an evaluation error is an error: the apiserver
 * answers such a request 500, not 403, so the read goes the probe's way.
 */
export function decisionFrom(status: unknown): Decision {
  if (typeof status !== 'object' || status === null) return { kind: 'error', reason: 'no_status' };
  if ('allowed' in status && status.allowed === true) return { kind: 'allowed' };
  if ('evaluationError' in status && typeof status.evaluationError === 'string' && status.evaluationError !== '') return { kind: 'error', reason: 'evaluation_error' };
  return { kind: 'denied', reason: 'reason' in status && typeof status.reason === 'string' ? status.reason : '' };
}

export class LocalAuthorizer {
  readonly #post: PostReview;
  readonly #ttls: Ttls;
  readonly #memo: TtlMemo<Decision>;
  readonly #observe: (result: string) => void;

  constructor(o: { post: PostReview; ttls: Ttls; max: number; now?: () => number; observe?: (result: string) => void }) {
    this.#post = o.post;
    this.#ttls = o.ttls;
    this.#memo = new TtlMemo<Decision>({ max: o.max, ...(o.now ? { now: o.now } : {}) });
    this.#observe = o.observe ?? (() => undefined);
  }

  authorize(credential: string, user: UserInfo, a: ReadAttributes): Promise<{ readonly value: Decision; readonly cached: boolean }> {
    return this.#memo.resolve(decisionKey(credential, a), async () => {
      const r = await this.#post('/apis/authorization.k8s.io/v1/subjectaccessreviews', subjectAccessReview(user, a));
      const value: Decision = r.ok ? decisionFrom(r.status) : { kind: 'error', reason: r.reason };
      this.#observe(value.kind);
      return { value, ttlMs: value.kind === 'allowed' ? this.#ttls.allowedMs : value.kind === 'denied' ? this.#ttls.deniedMs : 0 };
    });
  }
}
