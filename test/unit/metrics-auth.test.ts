// The metrics port's authorization, the pure parts: the SubjectAccessReview it sends, the 403 text
// for a non-resource path, and how long answers are remembered (an injected clock; the reviews are
// answered by a stub recording what was posted, standing for the apiserver's 201 answers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { MetricsAuth, METRICS_AUTH_ALLOWED_TTL_MS, METRICS_AUTH_DENIED_TTL_MS, nonResourceAccessReview, nonResourceForbiddenBody } from '../../proxy/metrics-auth.js';
import type { PostReview, ReviewAnswer } from '../../proxy/local-review.js';

function request(headers: Record<string, string>): IncomingMessage {
  const rawHeaders = Object.entries(headers).flat();
  const headersDistinct = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]]));
  return { rawHeaders, headersDistinct, headers, socket: {} } as unknown as IncomingMessage;
}

test('the SubjectAccessReview: nonResourceAttributes path and verb, the user as authenticated', () => {
  assert.deepEqual(nonResourceAccessReview({ username: 'u', uid: 'i', groups: ['g', 'system:authenticated'], extra: { k: ['v'] } }, 'get', '/metrics'), {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: { nonResourceAttributes: { path: '/metrics', verb: 'get' }, user: 'u', groups: ['g', 'system:authenticated'], extra: { k: ['v'] }, uid: 'i' },
  });
});

test('the 403 body: kube-apiserver\'s for a non-resource path, sanitized and quoted as Go does', () => {
  assert.equal(nonResourceForbiddenBody('nobody', 'get', '/metrics', ''),
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User \\"nobody\\" cannot get path \\"/metrics\\"","reason":"Forbidden","details":{},"code":403}\n');
  assert.match(nonResourceForbiddenBody('a<b', 'get', '/metrics', 'r'), /User \\"a\\u0026lt;b\\" cannot get path \\"\/metrics\\": r"/);
});

test('answers remembered for their TTLs, errors not at all', async () => {
  let now = 0;
  const posted: Array<{ path: string; body: unknown }> = [];
  let allowed = true;
  let fail = false;
  const post: PostReview = async (path, body): Promise<ReviewAnswer> => {
    posted.push({ path, body });
    if (fail) return { ok: false, reason: 'http_403' };
    if (path.includes('tokenreviews')) {
      const token = (body as { spec: { token: string } }).spec.token;
      return { ok: true, status: token === 'good' ? { authenticated: true, user: { username: 'prom', groups: ['system:authenticated'] } } : { authenticated: false } };
    }
    return { ok: true, status: { allowed } };
  };
  const errors: string[] = [];
  const auth = new MetricsAuth({ post, clientCerts: false, now: () => now, onReviewError: (why) => errors.push(why) });
  const good = request({ Authorization: 'Bearer good' });
  const kinds = () => posted.map((p) => (p.path.includes('tokenreviews') ? 'token' : 'sar'));

  assert.equal((await auth.check(request({}), 'get', '/metrics')).code, 401);
  assert.equal(posted.length, 0, 'no review without credentials');
  assert.equal((await auth.check(good, 'get', '/metrics')).code, 200);
  assert.deepEqual(kinds(), ['token', 'sar']);
  // Revoked: remembered until the allowed TTL ends, then asked again and refused.
  allowed = false;
  now = METRICS_AUTH_ALLOWED_TTL_MS - 1;
  assert.equal((await auth.check(good, 'get', '/metrics')).code, 200);
  assert.equal(posted.length, 2);
  now = METRICS_AUTH_ALLOWED_TTL_MS;
  const refused = await auth.check(good, 'get', '/metrics');
  assert.equal(refused.code, 403);
  assert.deepEqual(kinds(), ['token', 'sar', 'token', 'sar']);
  // A refusal is remembered for the denied TTL.
  allowed = true;
  now += METRICS_AUTH_DENIED_TTL_MS - 1;
  assert.equal((await auth.check(good, 'get', '/metrics')).code, 403);
  now += 1;
  assert.equal((await auth.check(good, 'get', '/metrics')).code, 200);
  // An invalid token: 401, remembered for the denied TTL.
  const n = posted.length;
  const bad = request({ authorization: 'bearer bad' });
  assert.equal((await auth.check(bad, 'get', '/metrics')).code, 401);
  assert.equal((await auth.check(bad, 'get', '/metrics')).code, 401);
  assert.equal(posted.length, n + 1);
  // A review without an answer: 401 (authentication) or 500 (authorization), reported, never remembered.
  fail = true;
  const other = request({ authorization: 'Bearer other' });
  assert.equal((await auth.check(other, 'get', '/metrics')).code, 401);
  assert.equal((await auth.check(other, 'get', '/metrics')).code, 401);
  assert.deepEqual(errors, ['token_review_http_403', 'token_review_http_403']);
  now += METRICS_AUTH_ALLOWED_TTL_MS;
  fail = false;
  assert.equal((await auth.check(good, 'get', '/metrics')).code, 200); // token remembered again
  now += METRICS_AUTH_ALLOWED_TTL_MS;
  const sarFails: PostReview = async (path, body) => (path.includes('subjectaccessreviews') ? { ok: false, reason: 'unreachable' } : post(path, body));
  const auth2 = new MetricsAuth({ post: sarFails, clientCerts: false, now: () => now });
  const e = await auth2.check(good, 'get', '/metrics');
  assert.equal(e.code, 500);
  // Impersonation is refused outright.
  assert.equal((await auth.check(request({ authorization: 'Bearer good', 'Impersonate-User': 'x' }), 'get', '/metrics')).code, 403);
});
