// The cache's way to the apiservers: the same upstream set as client traffic, with the proxy's own
// identity.
import type { CacheUpstream } from '../cache/upstream.js';
import type { UpstreamSet } from './upstream.js';

export function cacheUpstream(set: UpstreamSet): CacheUpstream {
  return {
    async get(path, signal) {
      const t = set.pick();
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'kube-cache-proxy' };
      const auth = set.credentials.authorization();
      if (auth) headers['authorization'] = auth;
      const res = await t.identity.request({ origin: t.origin, path, method: 'GET', headers, signal });
      return { statusCode: res.statusCode, body: res.body };
    },
  };
}
