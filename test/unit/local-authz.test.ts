// local authorization mode, the pure parts: the apiserver's 403 text, review answers narrowed,
// remembered answers (TTL by answer, an injected clock), keys that never hold the token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forbiddenBody, forbiddenStatusMessage, goQuote, UNAUTHORIZED_BODY } from '../../proxy/forbidden.js';
import { authenticationFrom, certificateUser, credentialHash, LocalAuthenticator } from '../../proxy/local-authn.js';
import { decisionFrom, decisionKey, LocalAuthorizer, subjectAccessReview, type ReadAttributes } from '../../proxy/local-authz.js';
import { TtlMemo } from '../../proxy/ttl-memo.js';
import type { PostReview } from '../../proxy/local-review.js';

const base = { user: 'viewer', verb: 'list', group: '', resource: 'pods', subresource: '', namespace: '', name: '' };

test('forbidden message: namespaced, cluster-scoped, named, subresource, group, reason', () => {
  assert.equal(forbiddenStatusMessage({ ...base, namespace: 'team-b' }, ''),
    'pods is forbidden: User "viewer" cannot list resource "pods" in API group "" in the namespace "team-b"');
  assert.equal(forbiddenStatusMessage(base, ''),
    'pods is forbidden: User "viewer" cannot list resource "pods" in API group "" at the cluster scope');
  assert.equal(forbiddenStatusMessage({ ...base, verb: 'get', namespace: 'ns', name: 'p1' }, ''),
    'pods "p1" is forbidden: User "viewer" cannot get resource "pods" in API group "" in the namespace "ns"');
  assert.equal(forbiddenStatusMessage({ ...base, verb: 'get', subresource: 'log', namespace: 'ns', name: 'p1' }, ''),
    'pods "p1" is forbidden: User "viewer" cannot get resource "pods/log" in API group "" in the namespace "ns"');
  assert.equal(forbiddenStatusMessage({ ...base, verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'x' }, ''),
    'endpointslices.discovery.k8s.io is forbidden: User "viewer" cannot watch resource "endpointslices" in API group "discovery.k8s.io" in the namespace "x"');
  assert.equal(forbiddenStatusMessage({ ...base, user: 'system:node:n1' }, 'can only list/watch pods with spec.nodeName field selector'),
    'pods is forbidden: User "system:node:n1" cannot list resource "pods" at the cluster scope'.replace('"pods" at', '"pods" in API group "" at') + ': can only list/watch pods with spec.nodeName field selector');
  // The apiserver sanitizes its own part (not the reason) and quotes as Go does.
  assert.equal(forbiddenStatusMessage({ ...base, user: 'a<b>&"c"' }, 'x<y'),
    'pods is forbidden: User "a&lt;b&gt;&amp;\\"c\\"" cannot list resource "pods" in API group "" at the cluster scope: x<y');
  assert.equal(goQuote('tab\there\u0001é'), '"tab\\there\\x01é"');
});

test('forbidden body: Status in the apiserver key order, details, HTML-safe JSON, newline', () => {
  assert.equal(forbiddenBody({ ...base, verb: 'get', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'ns', name: 'e' }, ''),
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"endpointslices.discovery.k8s.io \\"e\\" is forbidden: User \\"viewer\\" cannot get resource \\"endpointslices\\" in API group \\"discovery.k8s.io\\" in the namespace \\"ns\\"","reason":"Forbidden","details":{"name":"e","group":"discovery.k8s.io","kind":"endpointslices"},"code":403}\n');
  assert.match(forbiddenBody(base, 'a<b'), /: a\\u003cb","reason"/);
  assert.equal(UNAUTHORIZED_BODY, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}\n');
});

test('review answers narrowed: anything unexpected is an error, never allowed', () => {
  assert.deepEqual(authenticationFrom({ authenticated: true, user: { username: 'u', uid: '1', groups: ['g', 'system:authenticated'], extra: { k: ['v'], bad: [1] } } }),
    { kind: 'user', user: { username: 'u', uid: '1', groups: ['g', 'system:authenticated'], extra: { k: ['v'] } } });
  assert.deepEqual(authenticationFrom({ authenticated: false, error: 'x' }), { kind: 'unauthenticated' });
  assert.deepEqual(authenticationFrom({ user: { username: 'u' } }), { kind: 'unauthenticated' });
  assert.equal(authenticationFrom({ authenticated: true, user: {} }).kind, 'error');
  assert.equal(authenticationFrom('x').kind, 'error');
  assert.deepEqual(decisionFrom({ allowed: true }), { kind: 'allowed' });
  assert.deepEqual(decisionFrom({ allowed: false, reason: 'r' }), { kind: 'denied', reason: 'r' });
  assert.deepEqual(decisionFrom({ allowed: false, denied: true }), { kind: 'denied', reason: '' });
  assert.deepEqual(decisionFrom({ allowed: 'true' }), { kind: 'denied', reason: '' });
  assert.equal(decisionFrom({ allowed: false, evaluationError: 'boom' }).kind, 'error');
  assert.equal(decisionFrom(null).kind, 'error');
  assert.deepEqual(certificateUser('system:node:n', ['system:nodes'], 'X509SHA256=ab').groups, ['system:nodes', 'system:authenticated']);
});

test('SubjectAccessReview: the attributes, selectors as raw selectors, nothing empty', () => {
  const a: ReadAttributes = { verb: 'list', group: '', version: 'v1', resource: 'pods', subresource: '', namespace: '', name: '', fieldSelector: 'spec.nodeName=n', labelSelector: '' };
  assert.deepEqual(subjectAccessReview({ username: 'u', uid: 'i', groups: ['g'], extra: {} }, a), {
    apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
    spec: { resourceAttributes: { verb: 'list', group: '', version: 'v1', resource: 'pods', fieldSelector: { rawSelector: 'spec.nodeName=n' } }, user: 'u', groups: ['g'], extra: {}, uid: 'i' },
  });
});

test('keys: a hash of the credential, never the token; every attribute separates', () => {
  const token = 'secret-token-123';
  const h = credentialHash('token', token);
  assert.ok(!h.includes(token));
  const a: ReadAttributes = { verb: 'list', group: '', version: 'v1', resource: 'pods', subresource: '', namespace: 'a', name: '', fieldSelector: '', labelSelector: '' };
  const k = decisionKey(h, a);
  assert.ok(!k.includes(token));
  for (const field of Object.keys(a) as Array<keyof ReadAttributes>) assert.notEqual(decisionKey(h, { ...a, [field]: 'other' }), k, field);
  assert.notEqual(decisionKey(credentialHash('token', 'other'), a), k);
  assert.notEqual(credentialHash('cert', 'x', 'u', 'g'), credentialHash('cert', 'x', 'u'));
});

test('TtlMemo: expiry by the injected clock, errors not remembered, one computation per key in flight', async () => {
  let now = 0;
  const m = new TtlMemo<{ v: number }>({ max: 10, now: () => now });
  let computed = 0;
  const compute = (ttlMs: number) => async () => ({ value: { v: ++computed }, ttlMs });
  const [x, y] = await Promise.all([m.resolve('k', compute(1000)), m.resolve('k', compute(1000))]);
  assert.equal(computed, 1);
  assert.equal(x.value, y.value);
  assert.equal((await m.resolve('k', compute(1000))).cached, true);
  now = 999;
  assert.equal((await m.resolve('k', compute(1000))).cached, true);
  now = 1000;
  assert.deepEqual(await m.resolve('k', compute(0)), { value: { v: 2 }, cached: false });
  assert.equal((await m.resolve('k', compute(0))).cached, false, 'ttl 0: not remembered');
  const small = new TtlMemo<{ v: number }>({ max: 2, now: () => now });
  for (const k of ['a', 'b', 'c']) small.set(k, { v: 1 }, 1000);
  assert.equal(small.size, 2);
  assert.equal(small.get('a'), undefined);
});

test('authenticator and authorizer: allowed for the allowed TTL, refused for the denied TTL, failures asked again', async () => {
  let now = 0;
  const answers: Record<string, unknown> = {};
  let posts = 0;
  const post: PostReview = async (path) => {
    posts++;
    const a = answers[path];
    return a === undefined ? { ok: false, reason: 'unreachable' } : { ok: true, status: a };
  };
  const ttls = { allowedMs: 10_000, deniedMs: 2_000 };
  const authn = new LocalAuthenticator({ post, ttls, max: 10, now: () => now });
  const tr = '/apis/authentication.k8s.io/v1/tokenreviews';
  assert.equal((await authn.authenticate('h', 't')).value.kind, 'error');
  answers[tr] = { authenticated: false };
  assert.equal((await authn.authenticate('h', 't')).value.kind, 'unauthenticated', 'an error is not remembered');
  answers[tr] = { authenticated: true, user: { username: 'u' } };
  now = 1999;
  assert.equal((await authn.authenticate('h', 't')).value.kind, 'unauthenticated');
  now = 2000;
  assert.equal((await authn.authenticate('h', 't')).value.kind, 'user', 'a refusal lasts the denied TTL');
  answers[tr] = { authenticated: false };
  now = 11_999;
  assert.equal((await authn.authenticate('h', 't')).value.kind, 'user');
  now = 12_000;
  assert.equal((await authn.authenticate('h', 't')).value.kind, 'unauthenticated', 'an allowed answer lasts the allowed TTL');

  const authz = new LocalAuthorizer({ post, ttls, max: 10, now: () => now });
  const sar = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
  // Cluster-wide reads only (a read in a namespace first asks the broadest review: see below).
  const a: ReadAttributes = { verb: 'get', group: '', version: 'v1', resource: 'nodes', subresource: '', namespace: '', name: '', fieldSelector: '', labelSelector: '' };
  const user = { username: 'u', uid: '', groups: [], extra: {} };
  answers[sar] = { allowed: true };
  const before = posts;
  assert.deepEqual((await authz.authorize('h', user, a)).value, { kind: 'allowed' });
  answers[sar] = { allowed: false };
  assert.deepEqual(await authz.authorize('h', user, a), { value: { kind: 'allowed' }, cached: true });
  assert.equal(posts, before + 1);
  assert.equal((await authz.authorize('h', user, { ...a, verb: 'list' })).value.kind, 'denied');
  now += 10_000;
  assert.equal((await authz.authorize('h', user, a)).value.kind, 'denied');
});

test('authorizer: a read allowed in its broadest form (every namespace, any name, no selector) needs no review of its own', async () => {
  let now = 0;
  const sent: Array<Record<string, unknown>> = [];
  // An RBAC-like policy: "admin" may get pods everywhere; "kubelet" only with spec.nodeName=n1 (as
  // the Node authorizer), and "viewer" only in namespace team-a.
  const post: PostReview = async (_path, body) => {
    const spec = (body as { spec: { user: string; resourceAttributes: Record<string, unknown> } }).spec;
    const ra = spec.resourceAttributes;
    sent.push({ user: spec.user, ...ra });
    const fs = (ra['fieldSelector'] as { rawSelector?: string } | undefined)?.rawSelector;
    const allowed = spec.user === 'admin' || (spec.user === 'kubelet' && fs === 'spec.nodeName=n1') || (spec.user === 'viewer' && ra['namespace'] === 'team-a');
    return { ok: true, status: { allowed } };
  };
  const ttls = { allowedMs: 10_000, deniedMs: 2_000 };
  const authz = new LocalAuthorizer({ post, ttls, max: 100, now: () => now });
  const base: ReadAttributes = { verb: 'list', group: '', version: 'v1', resource: 'pods', subresource: '', namespace: '', name: '', fieldSelector: '', labelSelector: '' };
  const u = (username: string) => ({ username, uid: '', groups: [], extra: {} });

  for (let i = 0; i < 50; i++) {
    const d = await authz.authorize('admin', u('admin'), { ...base, namespace: `ns-${i}`, fieldSelector: `spec.nodeName=n${i}`, labelSelector: 'app=x' });
    assert.equal(d.value.kind, 'allowed');
  }
  assert.equal(sent.length, 1, 'one broad review stands for 50 narrower reads');
  assert.deepEqual(sent[0], { user: 'admin', verb: 'list', group: '', version: 'v1', resource: 'pods' });

  sent.length = 0;
  assert.equal((await authz.authorize('kubelet', u('kubelet'), { ...base, fieldSelector: 'spec.nodeName=n1' })).value.kind, 'allowed');
  assert.equal((await authz.authorize('kubelet', u('kubelet'), { ...base, fieldSelector: 'spec.nodeName=n2' })).value.kind, 'denied');
  assert.equal((await authz.authorize('kubelet', u('kubelet'), { ...base, fieldSelector: 'spec.nodeName=n1' })).value.kind, 'allowed');
  assert.equal(sent.length, 3, 'a broad refusal is asked once, then each narrow read once');
  assert.equal((await authz.authorize('kubelet', u('kubelet'), base)).value.kind, 'denied', 'the broad read itself is refused');
  assert.equal(sent.length, 3);

  sent.length = 0;
  assert.equal((await authz.authorize('viewer', u('viewer'), { ...base, namespace: 'team-a' })).value.kind, 'allowed');
  assert.equal((await authz.authorize('viewer', u('viewer'), { ...base, namespace: 'team-b' })).value.kind, 'denied');
  assert.equal(sent.length, 3);
  now = 10_000;
  assert.equal((await authz.authorize('viewer', u('viewer'), { ...base, namespace: 'team-a' })).value.kind, 'allowed');
  assert.equal(sent.length, 5, 'after the allowed TTL both reviews are asked again');
});
