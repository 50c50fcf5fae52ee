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

  /**
   * The read's decision. A narrow read (a namespace, a name or a selector) is first judged by the
   * broadest review of its kind — the same verb and resource in every namespace, any name, no
   * selector — because kube-apiserver's authorizers only ever allow more when a request asks for
   * less: RBAC rules without resourceNames cover every name, a ClusterRoleBinding every namespace,
   * and selectors (the Node authorizer's spec.nodeName) can only turn a refusal into an allowance.
   * One allowed broad review then stands for every narrower read of that client for the allowed TTL
   * (an admin reading 1,000 nodes' pods costs one review, not 1,000). A broad refusal refuses
   * nothing: the read's own review decides, and the broad refusal is remembered for the allowed TTL
   * too, so that a restricted client (a kubelet) pays one broad review per TTL, not one per read.
   */
  async authorize(credential: string, user: UserInfo, a: ReadAttributes): Promise<{ readonly value: Decision; readonly cached: boolean }> {
    const exactKey = decisionKey(credential, a);
    const known = this.#memo.get(exactKey);
    if (known !== undefined) return { value: known, cached: true };
    const broad = broadest(a);
    if (broad !== undefined) {
      const b = await this.#review(decisionKey(credential, broad), user, broad, true);
      if (b.value.kind === 'allowed') return b;
    }
    return this.#review(exactKey, user, a, false);
  }

  #review(key: string, user: UserInfo, a: ReadAttributes, broad: boolean): Promise<{ readonly value: Decision; readonly cached: boolean }> {
    return this.#memo.resolve(key, async () => {
      const r = await this.#post('/apis/authorization.k8s.io/v1/subjectaccessreviews', subjectAccessReview(user, a));
      const value: Decision = r.ok ? decisionFrom(r.status) : { kind: 'error', reason: r.reason };
      this.#observe(value.kind);
      const ttlMs = value.kind === 'allowed' || (broad && value.kind === 'denied') ? this.#ttls.allowedMs : value.kind === 'denied' ? this.#ttls.deniedMs : 0;
      return { value, ttlMs };
    });
  }
}

/** The same read in every namespace, for any name, without selectors; undefined when `a` is that already. */
export function broadest(a: ReadAttributes): ReadAttributes | undefined {
  if (!a.namespace && !a.name && !a.fieldSelector && !a.labelSelector) return undefined;
  return { ...a, namespace: '', name: '', fieldSelector: '', labelSelector: '' };
}
