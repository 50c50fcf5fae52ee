// Who may read what from the cache, in both authorization modes: every kind of client (token
// users, a certificate user, a ServiceAccount token, one of a deleted ServiceAccount, an invalid
// token, no credentials, Impersonate-User allowed and not) × get/list/watch × every cached resource
// × a permitted namespace, another one, cluster-wide × with and without selectors. The proxy's
// status code must equal the apiserver's at once (no retries), and its 401/403 must be the
// apiserver's bytes. In local mode the reads must have been judged locally and served from the
// cache; RBAC changes and revocations must take effect within the configured TTLs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { proxyReady, sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';

const cluster = sharedCluster();
const direct = cluster.info.apiservers[0]?.url ?? '';
const P = `am${randomBytes(3).toString('hex')}`;
const TEAM = 'team-a';
const OTHER = `${P}-other`;
const SA_NS = `${P}-sa`;
const NODE = `${P}-node`;
/** The read rules of the built-in `view` role (which the test cluster, without a controller manager, leaves unaggregated). */
const VIEW = `${P}-view`;
const log = (m: string) => process.stderr.write(`[authz-matrix] ${m}\n`);
const ALLOWED_TTL = 2;
const DENIED_TTL = 1;
/** Polling and scheduling slack on top of a TTL. */
const MARGIN_MS = 500;

const ca = readFileSync(cluster.info.caFile);
const plainAgent = new Agent({ connect: { ca } });
const node1 = cluster.info.users.node1;
const certAgent = new Agent({ connect: { ca, cert: readFileSync(node1.certFile ?? ''), key: readFileSync(node1.keyFile ?? '') } });

interface Client {
  readonly name: string;
  readonly headers: Record<string, string>;
  readonly cert?: boolean;
  /** Judged by the probe even in local mode. */
  readonly probeOnly?: boolean;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** 200 watches that had ended within 20 ms of their headers, by side (see send). */
const endedWatches: string[] = [];

async function send(base: string, path: string, c: Client, watch: boolean): Promise<Answer> {
  const res = await request(`${base}${path}`, { method: 'GET', headers: c.headers, dispatcher: c.cert ? certAgent : plainAgent });
  if (watch && res.statusCode === 200) {
    // undici emits 'error' (RequestAbortedError) when a body is destroyed unread, and adds no listener
    // of its own once the response has completed — as a watch the server ended at once has. Such an
    // end is recorded (the test shows them), not thrown from a timer into whichever test then runs.
    res.body.on('error', () => undefined);
    let text = '';
    res.body.on('data', (d: Buffer) => {
      text += d.toString('utf8');
    });
    await new Promise((r) => setTimeout(r, 20));
    if (res.body.readableEnded) endedWatches.push(`${base === direct ? 'apiserver' : 'proxy'} ${c.name} ${path}: ${text.slice(0, 200)}`);
    res.body.destroy();
    return { status: 200, headers: res.headers, body: '' };
  }
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const admin = { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` };

async function adminCall(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await request(`${direct}${path}`, {
    method: method as 'GET', headers: { ...admin, 'content-type': 'application/json' }, dispatcher: plainAgent,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.statusCode, json };
}

async function mustCreate(path: string, body: unknown): Promise<unknown> {
  const r = await adminCall('POST', path, body);
  assert.ok(r.status === 201 || r.status === 200, `POST ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

async function saToken(ns: string, sa: string): Promise<string> {
  const r = await mustCreate(`/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
  const token = (r as { status?: { token?: unknown } }).status?.token;
  assert.equal(typeof token, 'string');
  return token as string;
}

const roleBinding = (ns: string, name: string, sa: string, saNs: string) => ({
  apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace: ns },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: VIEW },
  subjects: [{ kind: 'ServiceAccount', name: sa, namespace: saNs }],
});

/** Waits (setup only, no assertion) until the apiserver itself answers `path` for `c` with `code`. */
async function settle(path: string, c: Client, code: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await send(direct, path, c, false)).status === code) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`setup: the apiserver never answered ${code} to ${path}`);
}

async function metrics(p: TestProxy): Promise<Map<string, number>> {
  const res = await request(`${p.metricsUrl}/metrics`);
  const out = new Map<string, number>();
  for (const line of (await res.body.text()).split('\n')) {
    if (!line.startsWith('kube_cache_proxy_')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
const sum = (m: Map<string, number>, prefix: string, has = ''): number =>
  [...m].filter(([k]) => k.startsWith(prefix) && k.includes(has)).reduce((a, [, v]) => a + v, 0);

// ------------------------------------------------------------------------------------------------

interface Case {
  readonly client: Client;
  readonly verb: 'get' | 'list' | 'watch';
  readonly path: string;
  /** resourceVersion=0 (no freshness target needed) or a GET. */
  readonly rv0: boolean;
}

const RESOURCES: Array<{ api: string; resource: string; namespaced: boolean }> = [
  { api: '/api/v1', resource: 'pods', namespaced: true },
  { api: '/api/v1', resource: 'nodes', namespaced: false },
  { api: '/api/v1', resource: 'namespaces', namespaced: false },
  { api: '/api/v1', resource: 'services', namespaced: true },
  { api: '/apis/discovery.k8s.io/v1', resource: 'endpointslices', namespaced: true },
  { api: '/api/v1', resource: 'configmaps', namespaced: true },
];

function cases(clients: readonly Client[]): Case[] {
  const out: Case[] = [];
  for (const r of RESOURCES) {
    const scopes = r.namespaced ? [`${r.api}/namespaces/${TEAM}/${r.resource}`, `${r.api}/namespaces/${OTHER}/${r.resource}`, `${r.api}/${r.resource}`] : [`${r.api}/${r.resource}`];
    const name = r.resource === 'nodes' ? NODE : r.resource === 'namespaces' ? TEAM : `${P}-x`;
    const selectors = ['', `labelSelector=${encodeURIComponent(`kcpm=${P}`)}`, `fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`];
    if (r.resource === 'pods') selectors.push(`fieldSelector=${encodeURIComponent('spec.nodeName=node-1')}`);
    const gets = r.namespaced
      ? [`${r.api}/namespaces/${TEAM}/${r.resource}/${name}`, `${r.api}/namespaces/${OTHER}/${r.resource}/${name}`]
      : r.resource === 'nodes' ? [`${r.api}/nodes/${NODE}`, `${r.api}/nodes/node-1`] : [`${r.api}/namespaces/${TEAM}`, `${r.api}/namespaces/${OTHER}`];
    for (const client of clients) {
      for (const g of gets) out.push({ client, verb: 'get', path: `${g}?resourceVersion=0`, rv0: true });
      for (const s of scopes) {
        for (const sel of selectors) {
          for (const rv of ['', 'resourceVersion=0']) {
            const q = (...parts: string[]) => parts.filter((x) => x !== '').join('&');
            out.push({ client, verb: 'list', path: `${s}?${q(sel, rv)}`, rv0: rv !== '' });
            out.push({ client, verb: 'watch', path: `${s}?${q('watch=1', sel, rv)}`, rv0: rv !== '' });
          }
        }
      }
    }
  }
  return out;
}

let clients: Client[] = [];
const proxies: Array<[string, TestProxy]> = [];

before(async () => {
  for (const ns of [OTHER, SA_NS]) await mustCreate('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { kcpm: P } } });
  await mustCreate('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { kcpm: P } } });
  for (const ns of [TEAM, OTHER]) {
    const meta = { name: `${P}-x`, labels: { kcpm: P } };
    await mustCreate(`/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: meta, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'registry.example/demo:1' }] } });
    await mustCreate(`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, data: { a: 'b' } });
    await mustCreate(`/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: meta, spec: { clusterIP: 'None', ports: [{ port: 80 }] } });
    await mustCreate(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta, addressType: 'IPv4', endpoints: [{ addresses: ['10.3.0.1'] }], ports: [{ port: 80 }] });
  }
  await mustCreate('/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: VIEW },
    rules: [{ apiGroups: ['', 'discovery.k8s.io'], resources: ['pods', 'services', 'endpoints', 'configmaps', 'endpointslices'], verbs: ['get', 'list', 'watch'] }],
  });
  for (const sa of ['reader', 'gone']) await mustCreate(`/api/v1/namespaces/${SA_NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
  await mustCreate(`/apis/rbac.authorization.k8s.io/v1/namespaces/${TEAM}/rolebindings`, roleBinding(TEAM, `${P}-reader`, 'reader', SA_NS));
  const reader = await saToken(SA_NS, 'reader');
  const gone = await saToken(SA_NS, 'gone');
  const goneClient: Client = { name: 'deleted-sa', headers: { authorization: `Bearer ${gone}` } };
  assert.equal((await adminCall('DELETE', `/api/v1/namespaces/${SA_NS}/serviceaccounts/gone`)).status, 200);
  await settle(`/api/v1/namespaces/${TEAM}/configmaps`, goneClient, 401);
  const token = (u: 'admin' | 'viewer' | 'nobody') => ({ authorization: `Bearer ${cluster.info.users[u].token ?? ''}` });
  clients = [
    { name: 'admin', headers: token('admin') },
    { name: 'viewer', headers: token('viewer') },
    { name: 'nobody', headers: token('nobody') },
    { name: 'node-1', headers: {}, cert: true },
    { name: 'sa', headers: { authorization: `Bearer ${reader}` } },
    goneClient,
    { name: 'invalid', headers: { authorization: `Bearer ${randomBytes(24).toString('hex')}` } },
    { name: 'anonymous', headers: {}, probeOnly: true },
    { name: 'admin-as-viewer', headers: { ...token('admin'), 'impersonate-user': 'viewer' }, probeOnly: true },
    { name: 'viewer-as-admin', headers: { ...token('viewer'), 'impersonate-user': 'admin' }, probeOnly: true },
  ];
  await settle(`/api/v1/namespaces/${TEAM}/configmaps`, clients[4] as Client, 200);
  const cache = (mode: 'probe' | 'local') => cacheConfigFrom({ authorizationMode: mode, authorizationAllowedTtlSeconds: ALLOWED_TTL, authorizationDeniedTtlSeconds: DENIED_TTL });
  proxies.push(['probe', await startTestProxy(cluster, { cache: cache('probe') })], ['local', await startTestProxy(cluster, { cache: cache('local') })]);
  for (const [, p] of proxies) await proxyReady(p, 120_000);
});

after(async () => {
  for (const [, p] of proxies) await p.stop();
  const del = (path: string) => adminCall('DELETE', path).catch(() => undefined);
  for (const ns of [TEAM, OTHER]) {
    for (const r of ['pods', 'configmaps', 'services']) await del(`/api/v1/namespaces/${ns}/${r}/${P}-x${r === 'pods' ? '?gracePeriodSeconds=0' : ''}`);
    await del(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${P}-x`);
  }
  await del(`/apis/rbac.authorization.k8s.io/v1/namespaces/${TEAM}/rolebindings/${P}-reader`);
  await del(`/api/v1/nodes/${NODE}`);
  await del(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${VIEW}`);
  for (const ns of [OTHER, SA_NS]) {
    await del(`/api/v1/namespaces/${ns}/serviceaccounts/reader`);
    await del(`/api/v1/namespaces/${ns}`);
    await adminCall('PUT', `/api/v1/namespaces/${ns}/finalize`, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns }, spec: { finalizers: [] } }).catch(() => undefined);
  }
  await plainAgent.close();
  await certAgent.close();
});

const REFUSAL_HEADERS = ['content-type', 'cache-control', 'x-content-type-options', 'www-authenticate'];

for (const mode of ['probe', 'local'] as const) {
  test(`${mode} mode: every client × get/list/watch × every cached resource × scope × selectors answers as the apiserver`, { timeout: 600_000 }, async () => {
    const p = (proxies.find(([m]) => m === mode) as [string, TestProxy])[1];
    const all = cases(clients);
    const m0 = await metrics(p);
    let ok200 = 0;
    let rv0ok = 0;
    let judged = 0;
    const byCode = new Map<number, number>();
    // A few at a time; the first mismatch fails the test.
    let next = 0;
    const worker = async () => {
      try {
        await work();
      } catch (err) {
        // The first mismatch stops the other workers too: none may go on into the next test.
        next = all.length;
        throw err;
      }
    };
    const work = async () => {
      for (let i = next++; i < all.length; i = next++) {
        const c = all[i] as Case;
        const what = `${mode} ${c.client.name} ${c.verb} ${c.path}`;
        const proxied = await send(p.url, c.path, c.client, c.verb === 'watch');
        const d = await send(direct, c.path, c.client, c.verb === 'watch');
        assert.equal(proxied.status, d.status, `${what}: proxy ${proxied.status} ${proxied.body.slice(0, 300)} / apiserver ${d.status} ${d.body.slice(0, 300)}`);
        byCode.set(d.status, (byCode.get(d.status) ?? 0) + 1);
        if (d.status === 401 || d.status === 403) {
          assert.equal(proxied.body, d.body, `${what}: body`);
          for (const h of REFUSAL_HEADERS) assert.equal(proxied.headers[h], d.headers[h], `${what}: header ${h}`);
        }
        if (!c.client.probeOnly) judged++;
        if (d.status === 200) {
          ok200++;
          if (c.rv0) rv0ok++;
        }
      }
    };
    // All settled before the first failure is thrown: no request of this test runs into the next.
    const settled = await Promise.allSettled(Array.from({ length: 6 }, worker));
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    const m1 = await metrics(p);
    const delta = (prefix: string, has = '') => sum(m1, prefix, has) - sum(m0, prefix, has);
    const served = delta('kube_cache_proxy_cache_served_total');
    const fallbacks = [...m1].filter(([k, v]) => k.startsWith('kube_cache_proxy_cache_fallbacks_total') && v > (m0.get(k) ?? 0)).map(([k, v]) => `${/reason="([^"]*)"/.exec(k)?.[1] ?? '?'}:${/verb="([^"]*)"/.exec(k)?.[1] ?? '?'}=${v - (m0.get(k) ?? 0)}`);
    if (endedWatches.length > 0) log(`${mode}: ${endedWatches.length} watches answered 200 had ended within 20 ms: ${endedWatches.splice(0).join(' | ')}`);
    log(`${mode}: ${all.length} cases, by code ${JSON.stringify([...byCode])}; 200s ${ok200} (resourceVersion=0 or GET ${rv0ok}); served from the cache ${served}; forwarded ${fallbacks.join(' ')}`);
    // Every allowed read that needs no freshness target was served from the cache; the others too,
    // but for consistent reads of a quiet resource (forwarded rather than waiting for its bookmark).
    assert.ok(served >= rv0ok, `${mode}: only ${served} reads served from the cache, ${rv0ok} resourceVersion=0 reads allowed`);
    const waits = [...m1].filter(([k]) => k.startsWith('kube_cache_proxy_cache_fallbacks_total'));
    const forwarded = waits.reduce((a, [k, v]) => a + v - (m0.get(k) ?? 0), 0);
    const other = waits.filter(([k, v]) => v > (m0.get(k) ?? 0) && !/reason="(quiet|rv_wait_timeout)"/.test(k)).map(([k]) => k);
    assert.deepEqual(other, [], `${mode}: reads forwarded for other reasons`);
    assert.ok(served + forwarded >= ok200, `${mode}: ${ok200} allowed reads, ${served} served from the cache, ${forwarded} forwarded for freshness`);
    if (mode === 'local') {
      const allowed = delta('kube_cache_proxy_authorization_decisions_total', 'decision="allowed"');
      const refused = delta('kube_cache_proxy_authorization_decisions_total', 'decision="unauthorized"') + delta('kube_cache_proxy_authorization_decisions_total', 'decision="forbidden"');
      const errors = delta('kube_cache_proxy_authorization_reviews_total', 'result="error"');
      log(`local: decisions allowed ${allowed}, refused ${refused}; reviews ${delta('kube_cache_proxy_authorization_reviews_total')} (errors ${errors}) for ${judged} locally judgeable reads`);
      assert.equal(errors, 0, 'no review failed');
      assert.ok(allowed > 0 && refused > 0, 'the local path decided');
      assert.ok(allowed + refused >= rv0ok / 2, 'most reads were judged locally');
    }
  });
}

test('local mode: a resourceVersion=0 read sends nothing upstream once its decision is remembered', async () => {
  const p = (proxies.find(([m]) => m === 'local') as [string, TestProxy])[1];
  const viewer: Client = { name: 'viewer', headers: { authorization: `Bearer ${cluster.info.users.viewer.token ?? ''}` } };
  const path = `/api/v1/namespaces/${TEAM}/configmaps?resourceVersion=0`;
  assert.equal((await send(p.url, path, viewer, false)).status, 200);
  const m0 = await metrics(p);
  for (let i = 0; i < 20; i++) assert.equal((await send(p.url, path, viewer, false)).status, 200);
  const m1 = await metrics(p);
  assert.equal(sum(m1, 'kube_cache_proxy_authorization_reviews_total') - sum(m0, 'kube_cache_proxy_authorization_reviews_total'), 0, 'no review');
  assert.equal(sum(m1, 'kube_cache_proxy_cache_served_total') - sum(m0, 'kube_cache_proxy_cache_served_total'), 20, 'all from the cache');
  assert.equal(sum(m1, 'kube_cache_proxy_authorization_decisions_total', 'cached="true"') - sum(m0, 'kube_cache_proxy_authorization_decisions_total', 'cached="true"'), 20);
});

/**
 * Polls the proxy and the apiserver side by side until both answer `to` instead of `from` (any
 * other code fails at once), and returns how much later the proxy changed than the apiserver
 * itself: that lag is what the TTL bounds (the apiserver's own informers take their time too).
 */
async function transition(p: TestProxy, path: string, c: Client, from: number, to: number, ttlMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  let directAt: number | undefined;
  let proxyAt: number | undefined;
  while (directAt === undefined || proxyAt === undefined) {
    const [r, d] = await Promise.all([send(p.url, path, c, false), send(direct, path, c, false)]);
    const now = Date.now();
    for (const [x, who] of [[r, 'proxy'], [d, 'apiserver']] as const) assert.ok(x.status === from || x.status === to, `${what}: ${who} answered ${x.status} ${x.body.slice(0, 200)}`);
    if (d.status === to) directAt ??= now;
    if (r.status === to) proxyAt ??= now;
    if (directAt === undefined && proxyAt !== undefined) assert.fail(`${what}: the proxy changed before the apiserver`);
    assert.ok(now - t0 < 30_000, `${what}: no change after 30 s`);
    await new Promise((res) => setTimeout(res, 50));
  }
  const lag = proxyAt - directAt;
  log(`${what}: ${from} → ${to}: the apiserver after ${directAt - t0} ms, the proxy ${lag} ms later (TTL ${ttlMs} ms)`);
  assert.ok(lag <= ttlMs + MARGIN_MS, `${what}: the proxy changed ${lag} ms after the apiserver, TTL ${ttlMs} ms`);
}

test('local mode: RBAC grants and revocations, and a deleted ServiceAccount, take effect within the TTLs', { timeout: 120_000 }, async () => {
  const p = (proxies.find(([m]) => m === 'local') as [string, TestProxy])[1];
  await mustCreate(`/api/v1/namespaces/${SA_NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'rev' } });
  const c: Client = { name: 'rev', headers: { authorization: `Bearer ${await saToken(SA_NS, 'rev')}` } };
  const path = `/api/v1/namespaces/${OTHER}/configmaps?resourceVersion=0`;
  const rb = `/apis/rbac.authorization.k8s.io/v1/namespaces/${OTHER}/rolebindings`;
  assert.equal((await send(p.url, path, c, false)).status, 403, 'no binding yet');
  // Granted: a remembered refusal lasts at most the denied TTL.
  await mustCreate(rb, roleBinding(OTHER, `${P}-rev`, 'rev', SA_NS));
  await transition(p, path, c, 403, 200, DENIED_TTL * 1000, 'grant');
  // Revoked: a remembered allowed decision lasts at most the allowed TTL.
  assert.equal((await send(p.url, path, c, false)).status, 200);
  assert.equal((await adminCall('DELETE', `${rb}/${P}-rev`)).status, 200);
  await transition(p, path, c, 200, 403, ALLOWED_TTL * 1000, 'revoke');
  // A deleted ServiceAccount's token: authentication remembered at most the allowed TTL.
  await mustCreate(rb, roleBinding(OTHER, `${P}-rev`, 'rev', SA_NS));
  await transition(p, path, c, 403, 200, DENIED_TTL * 1000, 'grant again');
  assert.equal((await send(p.url, path, c, false)).status, 200);
  assert.equal((await adminCall('DELETE', `/api/v1/namespaces/${SA_NS}/serviceaccounts/rev`)).status, 200);
  await transition(p, path, c, 200, 401, ALLOWED_TTL * 1000, 'token revoked');
  await adminCall('DELETE', `${rb}/${P}-rev`);
});
