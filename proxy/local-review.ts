// TokenReview and SubjectAccessReview, created with the proxy's own credentials on the same
// apiservers (and balancing) as the cache's requests. A review is stored nowhere: sending it again
// after a failure before any answer is harmless, so it fails over like a read.
import type { BackendSet } from './upstream.js';
import { readBody } from '../cache/upstream.js';

export type ReviewAnswer = { readonly ok: true; readonly status: unknown } | { readonly ok: false; readonly reason: string };

/** POSTs a review: its `status` when the apiserver created it (201), else why not. */
export type PostReview = (path: string, body: unknown) => Promise<ReviewAnswer>;

const REVIEW_TIMEOUT_MS = 10_000;

export function reviewPoster(set: BackendSet): PostReview {
  return async (path, body) => {
    const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/json', 'user-agent': 'kube-cache-proxy' };
    const auth = set.credentials.authorization();
    if (auth) headers['authorization'] = auth;
    let text: Buffer;
    let code: number;
    try {
      const { response } = await set.request({
        identity: true, kind: 'short', retry: 'idempotent',
        request: { path, method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(REVIEW_TIMEOUT_MS) },
      });
      code = response.statusCode;
      text = await readBody(response.body, 1 << 20);
    } catch {
      return { ok: false, reason: 'unreachable' };
    }
    if (code !== 201) return { ok: false, reason: `http_${code}` };
    try {
      const doc: unknown = JSON.parse(text.toString('utf8'));
      const status = typeof doc === 'object' && doc !== null && 'status' in doc ? doc.status : undefined;
      return typeof status === 'object' && status !== null ? { ok: true, status } : { ok: false, reason: 'no_status' };
    } catch {
      return { ok: false, reason: 'bad_json' };
    }
  };
}
