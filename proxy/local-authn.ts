// Authentication in `local` mode: who a bearer token belongs to, by TokenReview (created with the
// proxy's own credentials), remembered under a SHA-256 of the token — never the token itself.
// Client certificates need no review: proxy/client-identity.ts verified them against
// --client-ca-file, and the user and groups are the certificate's CN and O, as for the apiserver.
import { createHash } from 'node:crypto';
import type { PostReview } from './local-review.js';
import { TtlMemo } from './ttl-memo.js';

export interface UserInfo {
  readonly username: string;
  readonly uid: string;
  readonly groups: readonly string[];
  readonly extra: Readonly<Record<string, readonly string[]>>;
}

export type Authentication =
  | { readonly kind: 'user'; readonly user: UserInfo }
  | { readonly kind: 'unauthenticated' }
  | { readonly kind: 'error'; readonly reason: string };

export interface Ttls {
  readonly allowedMs: number;
  readonly deniedMs: number;
}

export const credentialHash = (kind: string, ...parts: readonly string[]): string =>
  createHash('sha256').update([kind, ...parts].join('\u0000')).digest('base64url');

const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v as string[] : undefined);

/** A TokenReview's status, narrowed; anything unexpected is an error (the read falls back to the probe). */
export function authenticationFrom(status: unknown): Authentication {
  if (typeof status !== 'object' || status === null) return { kind: 'error', reason: 'no_status' };
  if (!('authenticated' in status) || status.authenticated !== true) return { kind: 'unauthenticated' };
  const u = 'user' in status ? status.user : undefined;
  if (typeof u !== 'object' || u === null || !('username' in u) || typeof u.username !== 'string' || u.username === '') return { kind: 'error', reason: 'no_user' };
  const uid = 'uid' in u && typeof u.uid === 'string' ? u.uid : '';
  const groups = 'groups' in u ? strings(u.groups) ?? [] : [];
  const extra: Record<string, readonly string[]> = {};
  if ('extra' in u && typeof u.extra === 'object' && u.extra !== null) {
    for (const [k, v] of Object.entries(u.extra)) {
      const values = strings(v);
      if (values) extra[k] = values;
    }
  }
  return { kind: 'user', user: { username: u.username, uid, groups, extra } };
}

/** A verified client certificate's user, as kube-apiserver's x509 authenticator and group adder make it. */
export function certificateUser(user: string, groups: readonly string[], credentialId: string): UserInfo {
  return {
    username: user,
    uid: '',
    groups: groups.includes('system:authenticated') ? groups : [...groups, 'system:authenticated'],
    extra: { 'authentication.kubernetes.io/credential-id': [credentialId] },
  };
}

export class LocalAuthenticator {
  readonly #post: PostReview;
  readonly #ttls: Ttls;
  readonly #memo: TtlMemo<Authentication>;
  readonly #observe: (result: string) => void;

  constructor(o: { post: PostReview; ttls: Ttls; max: number; now?: () => number; observe?: (result: string) => void }) {
    this.#post = o.post;
    this.#ttls = o.ttls;
    this.#memo = new TtlMemo<Authentication>({ max: o.max, ...(o.now ? { now: o.now } : {}) });
    this.#observe = o.observe ?? (() => undefined);
  }

  /** `credential`: credentialHash of the token. */
  authenticate(credential: string, token: string): Promise<{ readonly value: Authentication; readonly cached: boolean }> {
    return this.#memo.resolve(credential, async () => {
      const r = await this.#post('/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
      const value: Authentication = r.ok ? authenticationFrom(r.status) : { kind: 'error', reason: r.reason };
      this.#observe(value.kind === 'user' ? 'authenticated' : value.kind);
      return { value, ttlMs: value.kind === 'user' ? this.#ttls.allowedMs : value.kind === 'unauthenticated' ? this.#ttls.deniedMs : 0 };
    });
  }
}
