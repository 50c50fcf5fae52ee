// Remembered "allowed" answers of the apiserver to this proxy's probes, for reads that need no
// freshness proof (resourceVersion=0): an opt-in trade of up to `ttl` seconds of revocation delay
// for not asking the apiserver again. Keyed by everything that decides authorization: the client's
// credentials (Authorization, Impersonate-*, or its verified certificate identity) and the
// request's verb, path and selectors. Only successful probes are remembered; off when ttl is 0.
import { createHash } from 'node:crypto';
import type { ClientRequest } from './client-http.js';
import { LRUCache } from 'lru-cache';
import type { Forwarding } from './client-identity.js';
import type { RequestInfo } from './request-info.js';

export class AuthorizationCache {
  readonly #lru: LRUCache<string, true> | undefined;

  constructor(o: { ttlSeconds: number; max: number }) {
    this.#lru = o.ttlSeconds > 0 ? new LRUCache<string, true>({ max: o.max, ttl: o.ttlSeconds * 1000 }) : undefined;
  }

  get enabled(): boolean {
    return this.#lru !== undefined;
  }

  /** The key for this request, or undefined when the cache is off. */
  key(req: ClientRequest, info: RequestInfo, f: Forwarding): string | undefined {
    if (!this.#lru) return undefined;
    const h = createHash('sha256');
    if (f.kind === 'impersonate') h.update(`cert\0${f.credentialId}\0${f.user}\0${f.groups.join('\0')}\0`);
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = (req.rawHeaders[i] ?? '').toLowerCase();
      if (name === 'authorization' || name.startsWith('impersonate-')) h.update(`${name}\0${req.rawHeaders[i + 1] ?? ''}\0`);
    }
    h.update(`${info.verb}\0${info.path}\0${info.labelSelector}\0${info.fieldSelector}`);
    return h.digest('base64url');
  }

  allowed(key: string | undefined): boolean {
    return key !== undefined && this.#lru?.get(key) === true;
  }

  remember(key: string | undefined): void {
    if (key !== undefined) this.#lru?.set(key, true);
  }
}
