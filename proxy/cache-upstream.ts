// The cache's way to the apiservers: the same backend set as client traffic, with the proxy's own
// identity. Its requests are all GETs: they fail over like a client's reads.
import type { CacheUpstream } from '../cache/upstream.js';
import type { BackendSet } from './upstream.js';

export function cacheUpstream(set: BackendSet): CacheUpstream {
  return {
    async get(path, signal, options) {
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'kube-cache-proxy' };
      const auth = set.credentials.authorization();
      if (auth) headers['authorization'] = auth;
      const { backend, response } = await set.request({
        identity: true,
        kind: options?.longRunning ? 'long' : 'short',
        retry: 'idempotent',
        avoid: options?.avoid,
        request: { path, method: 'GET', headers, signal },
      });
      return { statusCode: response.statusCode, body: response.body, backend: backend.key };
    },
    healthyBackends: () => set.healthy(),
  };
}
