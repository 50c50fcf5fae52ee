// Authentication and authorization through the proxy versus straight to the apiserver: tokens pass
// through untouched, so the apiserver's own 401/403 answers reach the client byte for byte; client
// certificates are verified by the proxy and forwarded by impersonation as the same identity.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { both, call, closeAgents, type CallOptions, type Reply } from '../helpers/http.js';
import { generateSelfSignedCert } from '../../proxy/self-signed-cert.js';

const cluster = sharedCluster();
let proxy: TestProxy;
const agents: Agent[] = [];
before(async () => {
  proxy = await startTestProxy(cluster);
});
after(async () => {
  await proxy.stop();
  await Promise.all(agents.map((a) => a.close()));
  await closeAgents();
});

const direct = () => cluster.info.apiservers[0]?.url ?? '';
const pki = (f: string) => join(cluster.info.dir, 'pki', f);

/** Headers that must be the same on an error answer (Audit-Id, Date and the APF uids are per request). */
function assertSameAnswer(d: Reply, p: Reply, what: string): void {
  assert.equal(p.status, d.status, `${what}: status (proxied ${p.text()} / direct ${d.text()})`);
  for (const h of ['content-type', 'content-length', 'cache-control', 'x-content-type-options', 'www-authenticate']) {
    assert.equal(p.headers[h], d.headers[h], `${what}: header ${h}`);
  }
  assert.equal(p.text(), d.text(), `${what}: body`);
}

async function assertSame(path: string, o: CallOptions & { expect?: number }, what = `${o.method ?? 'GET'} ${path} as ${o.user ?? 'admin'}`): Promise<{ direct: Reply; proxied: Reply }> {
  const r = await both(cluster, proxy.url, path, o);
  if (o.expect !== undefined) assert.equal(r.direct.status, o.expect, `${what}: direct status ${r.direct.status} ${r.direct.text()}`);
  assertSameAnswer(r.direct, r.proxied, what);
  return r;
}

const cmBody = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: 'v' } });
const ssrBody = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
const SSR = '/apis/authentication.k8s.io/v1/selfsubjectreviews';

function obj(v: unknown): Record<string, unknown> {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `not an object: ${JSON.stringify(v)?.slice(0, 300)}`);
  return v as Record<string, unknown>;
}
const items = (r: Reply) => {
  const i = obj(r.json())['items'];
  assert.ok(Array.isArray(i));
  return i.map((x) => JSON.stringify(x));
};

/** A client with an arbitrary TLS client certificate (and optionally other headers). */
interface RawOptions {
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly method?: 'GET' | 'POST';
  readonly body?: string;
  readonly headers?: Record<string, string>;
}
function clientAgent(o: RawOptions): Agent {
  const a = new Agent({ connect: { ca: readFileSync(cluster.info.caFile), ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}) } });
  agents.push(a);
  return a;
}
async function raw(base: string, path: string, o: RawOptions): Promise<Reply> {
  const res = await request(`${base}${path}`, {
    method: o.method ?? 'GET',
    headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
    body: o.body,
    dispatcher: clientAgent(o),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, text: () => body.toString('utf8'), json: () => JSON.parse(body.toString('utf8')) as unknown };
}
async function rawBoth(path: string, o: RawOptions): Promise<{ direct: Reply; proxied: Reply }> {
  return { direct: await raw(direct(), path, o), proxied: await raw(proxy.url, path, o) };
}

const node1 = () => ({ cert: readFileSync(pki('node-1.crt')), key: readFileSync(pki('node-1.key')) });

function userInfo(r: Reply): Record<string, unknown> {
  assert.equal(r.status, 201, `SelfSubjectReview: ${r.status} ${r.text()}`);
  return obj(obj(obj(r.json())['status'])['userInfo']);
}

test('viewer outside team-a: the apiserver\'s own 403 for list, get, watch and create, byte for byte', async () => {
  for (const ns of ['default', 'kube-system']) {
    const base = `/api/v1/namespaces/${ns}/configmaps`;
    await assertSame(base, { user: 'viewer', expect: 403 });
    await assertSame(`${base}/kube-root-ca.crt`, { user: 'viewer', expect: 403 });
    await assertSame(`${base}?watch=true`, { user: 'viewer', expect: 403 });
    await assertSame(`${base}?watch=true&resourceVersion=0&timeoutSeconds=5`, { user: 'viewer', expect: 403 });
    await assertSame(base, { user: 'viewer', method: 'POST', body: cmBody('viewer-was-here'), expect: 403 });
  }
  await assertSame('/api/v1/configmaps', { user: 'viewer', expect: 403 });
  await assertSame('/api/v1/watch/namespaces/default/configmaps', { user: 'viewer', expect: 403 });
  // Inside team-a the viewer still cannot write, or read what the Role does not name.
  await assertSame('/api/v1/namespaces/team-a/configmaps', { user: 'viewer', method: 'POST', body: cmBody('viewer-was-here'), expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/secrets', { user: 'viewer', expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/configmaps/any', { user: 'viewer', method: 'DELETE', expect: 403 });
});

test('viewer inside team-a: list configmaps and pods, and watch, through the proxy', async () => {
  // Something to list (as admin, directly).
  const name = `authz-${Date.now().toString(36)}`;
  assert.equal((await call(cluster, direct(), '/api/v1/namespaces/team-a/configmaps', { method: 'POST', body: cmBody(name) })).status, 201);
  for (const path of ['/api/v1/namespaces/team-a/configmaps', '/api/v1/namespaces/team-a/pods']) {
    const r = await both(cluster, proxy.url, path, { user: 'viewer' });
    assert.equal(r.proxied.status, 200, `${path}: ${r.proxied.text()}`);
    assert.equal(r.direct.status, 200);
    assert.equal(r.proxied.headers['content-type'], r.direct.headers['content-type']);
    assert.deepEqual(items(r.proxied), items(r.direct), path);
  }
  const r = await call(cluster, proxy.url, '/api/v1/namespaces/team-a/configmaps', { user: 'viewer' });
  assert.ok(items(r).some((i) => i.includes(`"name":"${name}"`)));
  const w = await call(cluster, proxy.url, `/api/v1/namespaces/team-a/configmaps?watch=true&fieldSelector=metadata.name%3D${name}&timeoutSeconds=1`, { user: 'viewer' });
  assert.equal(w.status, 200);
  const first = obj(JSON.parse(w.text().split('\n')[0] ?? ''));
  assert.equal(first['type'], 'ADDED');
  await call(cluster, direct(), `/api/v1/namespaces/team-a/configmaps/${name}`, { method: 'DELETE' });
});

test('nobody gets the apiserver\'s 403 on every resource', async () => {
  const gets = [
    '/api/v1/namespaces', '/api/v1/namespaces/team-a', '/api/v1/namespaces/team-a/configmaps', '/api/v1/namespaces/team-a/pods',
    '/api/v1/pods', '/api/v1/nodes', '/api/v1/secrets', '/apis/apps/v1/deployments', '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    '/api/v1/namespaces/team-a/configmaps?watch=true', '/api/v1/namespaces/default/configmaps/kube-root-ca.crt',
  ];
  for (const path of gets) await assertSame(path, { user: 'nobody', expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/configmaps', { user: 'nobody', method: 'POST', body: cmBody('nobody-was-here'), expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/configmaps/x', { user: 'nobody', method: 'PUT', body: cmBody('x'), expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/configmaps/x', { user: 'nobody', method: 'PATCH', body: '{}', headers: { 'content-type': 'application/merge-patch+json' }, expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/configmaps/x', { user: 'nobody', method: 'DELETE', expect: 403 });
  await assertSame('/api/v1/namespaces/team-a/configmaps', { user: 'nobody', method: 'DELETE', expect: 403 });
  // What every authenticated user may do stays allowed: discovery, and asking who one is.
  const d = await assertSame('/api', { user: 'nobody', expect: 200 });
  assert.ok(d.proxied.body.length > 0);
  const who = await both(cluster, proxy.url, SSR, { user: 'nobody', method: 'POST', body: ssrBody });
  assert.deepEqual(userInfo(who.proxied), userInfo(who.direct));
  assert.equal(userInfo(who.proxied)['username'], 'nobody');
});

test('no credentials, a bad token, a Basic header: the same 401/403 as the apiserver', async () => {
  for (const path of ['/api/v1/namespaces', '/api/v1/namespaces/team-a/configmaps', '/api', '/apis', '/version', '/healthz', '/readyz', '/livez', '/openapi/v3']) {
    await assertSame(path, { user: 'anonymous' });
  }
  await assertSame('/api/v1/namespaces/team-a/configmaps', { user: 'anonymous', method: 'POST', body: cmBody('anon'), expect: 403 });
  for (const authorization of ['Bearer not-a-real-token', 'Bearer ', 'Basic dXNlcjpwYXNzd29yZA==', 'bearer lowercase-scheme']) {
    for (const path of ['/api/v1/namespaces', '/version', '/api/v1/namespaces/team-a/configmaps?watch=true']) {
      await assertSame(path, { user: 'anonymous', headers: { authorization } }, `GET ${path} with "${authorization}"`);
    }
  }
  const bad = await assertSame('/api/v1/namespaces', { user: 'anonymous', headers: { authorization: 'Bearer not-a-real-token' } });
  assert.equal(bad.proxied.status, 401);
  assert.equal(obj(bad.proxied.json())['reason'], 'Unauthorized');
});

test('node-1\'s client certificate reaches the apiserver as system:node:node-1', async () => {
  const r = await rawBoth(SSR, { ...node1(), method: 'POST', body: ssrBody });
  const p = userInfo(r.proxied);
  assert.equal(p['username'], 'system:node:node-1');
  assert.deepEqual(p['groups'], ['system:nodes', 'system:authenticated']);
  assert.deepEqual(p, userInfo(r.direct));

  // kubectl with node-1's kubeconfig: the same `auth whoami`, table and JSON.
  for (const args of [['auth', 'whoami'], ['auth', 'whoami', '-o', 'json']]) {
    const [viaProxy, straight] = await Promise.all([
      cluster.kubectl('node1', args, { server: proxy.url }),
      cluster.kubectl('node1', args, { server: direct() }),
    ]);
    assert.equal(viaProxy.code, 0, viaProxy.stderr);
    assert.match(viaProxy.stdout, /system:node:node-1/);
    assert.equal(viaProxy.stdout.replace(/"creationTimestamp": "[^"]*"/, ''), straight.stdout.replace(/"creationTimestamp": "[^"]*"/, ''));
  }

  // The Node authorizer sees the same user: pods of its node allowed, all pods refused.
  const mine = await rawBoth('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1', node1());
  assert.equal(mine.proxied.status, mine.direct.status, mine.proxied.text());
  assert.equal(mine.proxied.status, 200);
  assert.deepEqual(items(mine.proxied), items(mine.direct));
  const all = await rawBoth('/api/v1/pods', node1());
  assertSameAnswer(all.direct, all.proxied, 'node-1 lists all pods');
  assert.equal(all.proxied.status, 403);
  const cms = await rawBoth('/api/v1/namespaces/team-a/configmaps', node1());
  assertSameAnswer(cms.direct, cms.proxied, 'node-1 lists configmaps');
  const node = await rawBoth('/api/v1/nodes/node-2', node1());
  assertSameAnswer(node.direct, node.proxied, 'node-1 gets node-2');

  // A token next to a verified certificate: the apiserver authenticates the certificate first.
  const withToken = await rawBoth(SSR, { ...node1(), method: 'POST', body: ssrBody, headers: { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` } });
  assert.deepEqual(userInfo(withToken.proxied), userInfo(withToken.direct));
  assert.equal(userInfo(withToken.proxied)['username'], 'system:node:node-1');
  const withBadToken = await rawBoth(SSR, { ...node1(), method: 'POST', body: ssrBody, headers: { authorization: 'Bearer not-a-real-token' } });
  assert.deepEqual(userInfo(withBadToken.proxied), userInfo(withBadToken.direct));
});

test('a certificate the cluster CA did not issue for client auth gets the apiserver\'s 401', async () => {
  const self = await generateSelfSignedCert({ commonName: 'system:admin', dnsNames: ['intruder'], ipAddresses: [], validDays: 1 });
  const untrusted = { cert: self.certPem, key: self.keyPem };
  // Signed by the cluster CA but for server auth only: not a client certificate either.
  const serverOnly = { cert: readFileSync(cluster.info.servingCertFile), key: readFileSync(cluster.info.servingKeyFile) };
  for (const [what, c] of [['self-signed', untrusted], ['server-auth only', serverOnly]] as const) {
    for (const [path, o] of [['/api/v1/namespaces', {}], ['/version', {}], [SSR, { method: 'POST', body: ssrBody }]] as const) {
      const r = await rawBoth(path, { ...c, ...o });
      assertSameAnswer(r.direct, r.proxied, `${what} certificate, ${path}`);
      assert.equal(r.proxied.status, 401, `${what} certificate, ${path}`);
    }
    // With a token as well, the token decides (the certificate fails, the token succeeds).
    const admin = await rawBoth(SSR, { ...c, method: 'POST', body: ssrBody, headers: { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` } });
    assert.deepEqual(userInfo(admin.proxied), userInfo(admin.direct), what);
    assert.equal(userInfo(admin.proxied)['username'], 'admin');
    const viewer = await rawBoth('/api/v1/namespaces/default/configmaps', { ...c, headers: { authorization: `Bearer ${cluster.info.users.viewer.token ?? ''}` } });
    assertSameAnswer(viewer.direct, viewer.proxied, `${what} certificate with viewer's token`);
    assert.equal(viewer.proxied.status, 403);
    const bad = await rawBoth('/api/v1/namespaces', { ...c, headers: { authorization: 'Bearer not-a-real-token' } });
    assertSameAnswer(bad.direct, bad.proxied, `${what} certificate with a bad token`);
    assert.equal(bad.proxied.status, 401);
  }
});

test('a client-certificate user cannot impersonate through the proxy', async () => {
  const ns = `imp-${Date.now().toString(36)}`;
  const nsBody = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  const attempts: Array<Record<string, string>> = [
    { 'Impersonate-User': 'admin' },
    { 'impersonate-user': 'admin', 'impersonate-group': 'system:masters' },
    { 'Impersonate-User': 'system:node:node-1', 'Impersonate-Group': 'system:masters' },
    { 'Impersonate-Group': 'system:masters' },
    { 'Impersonate-Uid': 'uid-admin' },
    { 'Impersonate-Extra-Scopes': 'everything' },
  ];
  for (const headers of attempts) {
    const who = await rawBoth(SSR, { ...node1(), method: 'POST', body: ssrBody, headers });
    // The apiserver refuses these too (403, or 400 for a group, uid or extra without a user).
    assert.ok(who.direct.status === 403 || who.direct.status === 400, `direct ${who.direct.status} ${who.direct.text()}`);
    if (who.direct.status === 400) {
      // Refused before any permission check: the proxy gives the apiserver's very answer.
      assert.equal(who.proxied.status, 400, `${JSON.stringify(headers)}: ${who.proxied.status} ${who.proxied.text()}`);
      assert.deepEqual(who.proxied.json(), who.direct.json());
    } else {
      assert.equal(who.proxied.status, 403, `${JSON.stringify(headers)}: ${who.proxied.status} ${who.proxied.text()}`);
      assert.equal(obj(who.proxied.json())['reason'], 'Forbidden');
    }
    const create = await raw(proxy.url, '/api/v1/namespaces', { ...node1(), method: 'POST', body: nsBody, headers });
    assert.equal(create.status, who.direct.status, `create namespace with ${JSON.stringify(headers)}: ${create.text()}`);
  }
  const direct403 = await raw(direct(), SSR, { ...node1(), method: 'POST', body: ssrBody, headers: { 'Impersonate-User': 'admin' } });
  assert.equal(direct403.status, 403);
  // Nothing was created as anyone.
  assert.equal((await call(cluster, direct(), `/api/v1/namespaces/${ns}`)).status, 404);
  // And the same user with a token that may impersonate is still the apiserver's business (passed on).
  const adminImp = await both(cluster, proxy.url, SSR, { method: 'POST', body: ssrBody, headers: { 'Impersonate-User': 'viewer', 'Impersonate-Group': 'team-a-viewers' } });
  assert.deepEqual(userInfo(adminImp.proxied), userInfo(adminImp.direct));
  assert.equal(userInfo(adminImp.proxied)['username'], 'viewer');
  const viewerImp = await assertSame(SSR, { user: 'viewer', method: 'POST', body: ssrBody, headers: { 'Impersonate-User': 'admin' } });
  assert.equal(viewerImp.proxied.status, 403);
});

test('kubectl as node-1 through the proxy: the same answers as direct', async () => {
  for (const args of [['get', 'pods', '-A', '--field-selector', 'spec.nodeName=node-1', '-o', 'name'], ['get', 'pods', '-A'], ['get', 'configmaps', '-n', 'team-a'], ['auth', 'can-i', 'list', 'pods'], ['auth', 'can-i', 'get', 'nodes/node-1']]) {
    const [viaProxy, straight] = await Promise.all([
      cluster.kubectl('node1', args, { server: proxy.url }),
      cluster.kubectl('node1', args, { server: direct() }),
    ]);
    assert.equal(`${viaProxy.code}\n${viaProxy.stdout}${viaProxy.stderr}`, `${straight.code}\n${straight.stdout}${straight.stderr}`, args.join(' '));
  }
});
