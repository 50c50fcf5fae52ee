// Who may read what when reads come from the cache: every cache-served read is preceded by the
// probe with the client's own credentials, so the proxy must answer exactly what the apiserver
// answers that client — its own 401/403 byte for byte where it refuses, the same items where it
// allows (then from the cache, as the metrics show) — and a proxy-issued continue token is no key
// to someone else's data. Checked with the default proxy and with remembered authorizations
// (--cache-authorization-ttl), whose keys must separate users, credentials and selectors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { request } from 'undici';
import { proxyReady, sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { until } from '../helpers/wait.js';
import { call, closeAgents, type CallOptions, type Reply, type TestUser } from '../helpers/http.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';

const cluster = sharedCluster();
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const P = `ca${randomBytes(3).toString('hex')}`;
const PRIV = `${P}-priv`;
const NODE = `${P}-node`;
const TEAM = 'team-a';
const log = (m: string) => process.stderr.write(`[cache-authz] ${m}\n`);

let plain: TestProxy;
let remembering: TestProxy;
const proxies = (): Array<[string, TestProxy]> => [['proxy', plain], ['proxy with --cache-authorization-ttl', remembering]];

// ------------------------------------------------------------------------------------------------

async function mustCreate(path: string, body: unknown): Promise<void> {
  const r = await call(cluster, direct(), path, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 201, `POST ${path}: ${r.status} ${r.text()}`);
}

const podBody = (name: string, nodeName: string | undefined) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { kcpauthz: P, app: name.endsWith('0') ? 'db' : 'web' } },
  spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'registry.example/demo:1' }] },
});
const cmBody = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { kcpauthz: P } }, data: { secret: `${name} <only for some eyes>` } });

const teamPods = [0, 1, 2, 3, 4, 5].map((i) => `${P}-p${i}`);
const privPods = [0, 1, 2, 3].map((i) => `${P}-q${i}`);
const teamCms = [0, 1, 2, 3, 4].map((i) => `${P}-c${i}`);
const privCms = [0, 1, 2, 3, 4].map((i) => `${P}-d${i}`);

async function populate(): Promise<void> {
  await mustCreate('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: PRIV, labels: { kcpauthz: P } } });
  await mustCreate('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { kcpauthz: P } } });
  await Promise.all([
    ...teamPods.map((n, i) => mustCreate(`/api/v1/namespaces/${TEAM}/pods`, podBody(n, i % 3 === 0 ? undefined : i % 3 === 1 ? 'node-1' : 'node-2'))),
    ...privPods.map((n, i) => mustCreate(`/api/v1/namespaces/${PRIV}/pods`, podBody(n, i % 2 === 0 ? 'node-1' : 'node-2'))),
    ...teamCms.map((n) => mustCreate(`/api/v1/namespaces/${TEAM}/configmaps`, cmBody(n))),
    ...privCms.map((n) => mustCreate(`/api/v1/namespaces/${PRIV}/configmaps`, cmBody(n))),
    mustCreate(`/api/v1/namespaces/${TEAM}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: `${P}-s`, labels: { kcpauthz: P } }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } }),
    mustCreate(`/api/v1/namespaces/${PRIV}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: `${P}-s`, labels: { kcpauthz: P } }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } }),
    ...[TEAM, PRIV].map((ns) => mustCreate(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${P}-e`, labels: { kcpauthz: P } },
      addressType: 'IPv4', endpoints: [{ addresses: ['10.2.0.1'] }], ports: [{ port: 80 }],
    })),
  ]);
}

async function cleanup(): Promise<void> {
  const del = (path: string) => call(cluster, direct(), path, { method: 'DELETE' }).catch(() => undefined);
  for (const n of teamPods) await del(`/api/v1/namespaces/${TEAM}/pods/${n}?gracePeriodSeconds=0`);
  for (const n of teamCms) await del(`/api/v1/namespaces/${TEAM}/configmaps/${n}`);
  await del(`/api/v1/namespaces/${TEAM}/services/${P}-s`);
  await del(`/apis/discovery.k8s.io/v1/namespaces/${TEAM}/endpointslices/${P}-e`);
  await del(`/api/v1/namespaces/${PRIV}/pods?gracePeriodSeconds=0`);
  await del(`/api/v1/namespaces/${PRIV}/configmaps`);
  await del(`/api/v1/namespaces/${PRIV}/services/${P}-s`);
  await del(`/apis/discovery.k8s.io/v1/namespaces/${PRIV}/endpointslices/${P}-e`);
  await del(`/api/v1/nodes/${NODE}`);
  await del(`/api/v1/namespaces/${PRIV}`);
  await call(cluster, direct(), `/api/v1/namespaces/${PRIV}/finalize`, {
    method: 'PUT', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: PRIV }, spec: { finalizers: [] } }),
  }).catch(() => undefined);
}

// ------------------------------------------------------------------------------------------------

async function served(p: TestProxy): Promise<number> {
  return (await counters(p)).served;
}

/** Reads served from the cache, and reads forwarded by reason. */
async function counters(p: TestProxy): Promise<{ served: number; fallbacks: Map<string, number>; storeRV: Map<string, bigint> }> {
  const res = await request(`${p.metricsUrl}/metrics`);
  let n = 0;
  const fallbacks = new Map<string, number>();
  const storeRV = new Map<string, bigint>();
  for (const line of (await res.body.text()).split('\n')) {
    const value = line.slice(line.lastIndexOf(' ') + 1);
    const v = Number(value);
    if (line.startsWith('kube_cache_proxy_cache_served_total{')) n += v;
    if (line.startsWith('kube_cache_proxy_cache_fallbacks_total{')) {
      const reason = /reason="([^"]*)"/.exec(line)?.[1] ?? '?';
      fallbacks.set(reason, (fallbacks.get(reason) ?? 0) + v);
    }
    const rv = /^kube_cache_proxy_cache_resource_version\{resource="([^"]*)"\}/.exec(line);
    if (rv?.[1] !== undefined && /^[0-9]+$/.test(value)) storeRV.set(rv[1], BigInt(value));
  }
  return { served: n, fallbacks, storeRV };
}

/** The cached resource a collection path names (its metric label: the plural, with its group if any). */
function resourceOf(path: string): string {
  const parts = (path.split('?')[0] ?? '').split('/').filter((x) => x !== '');
  const core = parts[0] === 'api';
  const rest = parts.slice(core ? 2 : 3);
  const plural = (rest[0] === 'namespaces' && rest.length >= 3 ? rest[2] : rest[0]) ?? '';
  return core ? plural : `${plural}.${parts[1] ?? ''}`;
}

/** The resourceVersion of a list answer (the apiserver's revision when it answered a consistent LIST). */
function listRV(r: Reply): bigint {
  const v = r.json() as { metadata?: { resourceVersion?: string } };
  const rv = v.metadata?.resourceVersion ?? '';
  assert.match(rv, /^[0-9]+$/, `list resourceVersion ${rv}`);
  return BigInt(rv);
}

/** Headers that must be the same on a refusal (Audit-Id, Date and the APF uids are per request). */
function assertSameRefusal(d: Reply, p: Reply, what: string): void {
  assert.equal(p.status, d.status, `${what}: status (proxied ${p.text().slice(0, 300)} / direct ${d.text().slice(0, 300)})`);
  for (const h of ['content-type', 'content-length', 'cache-control', 'x-content-type-options', 'www-authenticate', 'content-encoding']) {
    assert.equal(p.headers[h], d.headers[h], `${what}: header ${h}`);
  }
  assert.equal(p.text(), d.text(), `${what}: body`);
}

/**
 * The proxy's answer and the apiserver's, for a request the apiserver refuses: the same bytes, and
 * nothing served from the cache.
 */
async function assertRefused(p: TestProxy, path: string, o: CallOptions, expect: number, what: string): Promise<void> {
  const before = await served(p);
  const r = await call(cluster, p.url, path, o);
  const after = await served(p);
  const d = await call(cluster, direct(), path, o);
  assert.equal(d.status, expect, `${what}: the apiserver answered ${d.status} ${d.text().slice(0, 300)}`);
  assertSameRefusal(d, r, what);
  assert.equal(after - before, 0, `${what}: a refused read was served from the cache`);
}

function itemBytes(b: Buffer): string[] {
  const v: unknown = JSON.parse(b.toString('utf8'));
  const items = typeof v === 'object' && v !== null && 'items' in v && Array.isArray(v.items) ? (v.items as unknown[]) : undefined;
  assert.ok(items, `not a list: ${b.toString('utf8', 0, 200)}`);
  return items.map((i) => JSON.stringify(i));
}
const continueOf = (r: Reply): string | undefined => {
  const v = r.json() as { metadata?: { continue?: string } };
  return v.metadata?.continue || undefined;
};

/** Every page of a list (following continue) as one item list; the statuses of the pages. */
async function listAll(base: string, path: string, o: CallOptions): Promise<{ status: number; items: string[]; first: Reply }> {
  const first = await call(cluster, base, path, o);
  if (first.status !== 200) return { status: first.status, items: [], first };
  const items = itemBytes(first.body);
  let token = continueOf(first);
  for (let n = 0; token && n < 200; n++) {
    // The next page: the same selectors and limit, no resourceVersion (the apiserver refuses both).
    const [p0, q = ''] = path.split('?', 2);
    const query = q.split('&').filter((kv) => kv !== '' && !kv.startsWith('resourceVersion=') && !kv.startsWith('resourceVersionMatch='));
    query.push(`continue=${encodeURIComponent(token)}`);
    const page = await call(cluster, base, `${p0 ?? ''}?${query.join('&')}`, o);
    assert.equal(page.status, 200, page.text());
    items.push(...itemBytes(page.body));
    token = continueOf(page);
  }
  return { status: 200, items, first };
}

/** Allowed lists checked, and the attempts forwarded for freshness and so tried again (asserted below). */
let allowedChecks = 0;
let freshnessRetries = 0;
/** The longest a store took to catch up with the apiserver after a read forwarded for freshness. */
let slowestCatchUpMs = 0;
/** A store behind the apiserver reaches it within this (a bookmark ~1 s after a progress watch opens). */
const CATCH_UP_MS = 10_000;

/**
 * An allowed list: the proxy's items equal the apiserver's (retried when other test files changed
 * the collection in between) and the read came from the cache (tried again, once the store has
 * caught up, when it was forwarded for freshness).
 */
async function assertAllowedFromCache(p: TestProxy, path: string, o: CallOptions, what: string): Promise<number> {
  let last = '';
  let equal = false;
  allowedChecks++;
  for (let attempt = 0; attempt < 6; attempt++) {
    const d1 = await listAll(direct(), path, o);
    const before = await counters(p);
    const r = await listAll(p.url, path, o);
    const after = await counters(p);
    assert.equal(d1.status, 200, `${what}: the apiserver answered ${d1.status} ${d1.first.text().slice(0, 300)}`);
    assert.equal(r.status, 200, `${what}: ${r.first.text().slice(0, 300)}`);
    assert.equal(r.first.headers['content-type'], d1.first.headers['content-type']);
    const same = (a: string[]) => JSON.stringify(a) === JSON.stringify(r.items);
    equal = same(d1.items) || same((await listAll(direct(), path, o)).items);
    last = `direct ${d1.items.length} items, proxied ${r.items.length}`;
    if (after.served - before.served >= 1) {
      if (equal) return r.items.length;
      await new Promise((res) => setTimeout(res, 300));
    } else {
      // Forwarded: only a consistent read the cache could not prove fresh in time (or would not wait
      // for, its resource being quiet while another resource's write moved the revision) may be.
      const reasons = [...after.fallbacks].filter(([k, v]) => v > (before.fallbacks.get(k) ?? 0)).map(([k]) => k);
      // (A first page so forwarded carries the apiserver's continue token: its next pages are
      // forwarded as foreign_continue.)
      const freshness: string[] = reasons.filter((r) => r === 'rv_wait_timeout' || r === 'quiet');
      assert.ok(freshness.length === 1 && reasons.every((r) => freshness.includes(r) || r === 'foreign_continue'), `${what}: not served from the cache (${reasons.join(', ')})`);
      // And it was behind: the read's target is at most the apiserver's revision right after it, so a
      // store that had reached that revision before the read could have served it.
      const resource = resourceOf(path);
      const storeBefore = before.storeRV.get(resource);
      assert.ok(storeBefore !== undefined, `${what}: no kube_cache_proxy_cache_resource_version for ${resource}`);
      const apiserverAfter = listRV((await listAll(direct(), path, o)).first);
      assert.ok(storeBefore < apiserverAfter, `${what}: forwarded (${reasons.join(', ')}) though the store was at ${storeBefore} before the read and the apiserver at ${apiserverAfter} after it`);
      last += `, forwarded (${reasons.join(', ')}; store ${storeBefore} < ${apiserverAfter})`;
      freshnessRetries++;
      // Tried again once the store has caught up (progress watches bring a bookmark every
      // --cache-bookmark-interval, about a second after each opens); not catching up is a failure.
      const took = await until(`${what}: the ${resource} store to reach ${apiserverAfter}`, async () => ((await counters(p)).storeRV.get(resource) ?? 0n) >= apiserverAfter, CATCH_UP_MS);
      slowestCatchUpMs = Math.max(slowestCatchUpMs, took);
    }
  }
  assert.fail(`${what}: ${last}`);
}

// ------------------------------------------------------------------------------------------------

const LIST_QUERIES = ['', '?resourceVersion=0', '?limit=1', `?labelSelector=kcpauthz%3D${P}`, '?fieldSelector=metadata.name%3Dx', '?resourceVersion=0&limit=5', '?watch=false'];

function collections(ns: string | undefined): Array<[string, string]> {
  const at = (api: string, r: string) => (ns === undefined ? `${api}/${r}` : `${api}/namespaces/${ns}/${r}`);
  return [['pods', at('/api/v1', 'pods')], ['configmaps', at('/api/v1', 'configmaps')], ['services', at('/api/v1', 'services')], ['endpointslices', at('/apis/discovery.k8s.io/v1', 'endpointslices')]];
}

/** Every cached resource's lists and GETs with resourceVersion=0 that `user` may not read (with `viewer`'s Role in team-a). */
function forbiddenFor(user: 'viewer' | 'nobody' | 'anonymous'): string[] {
  const out: string[] = [];
  const lists: string[] = [
    ...collections(PRIV).map(([, p]) => p), ...collections('default').map(([, p]) => p), ...collections(undefined).map(([, p]) => p),
    '/api/v1/namespaces', '/api/v1/nodes',
  ];
  if (user !== 'viewer') lists.push(...collections(TEAM).map(([, p]) => p));
  else lists.push(`/api/v1/namespaces/${TEAM}/services`, `/apis/discovery.k8s.io/v1/namespaces/${TEAM}/endpointslices`);
  for (const l of lists) for (const q of LIST_QUERIES) out.push(`${l}${q}`);
  const gets = [
    `/api/v1/namespaces/${PRIV}/pods/${privPods[0] ?? ''}`, `/api/v1/namespaces/${PRIV}/configmaps/${privCms[0] ?? ''}`, `/api/v1/namespaces/${PRIV}/services/${P}-s`,
    `/apis/discovery.k8s.io/v1/namespaces/${PRIV}/endpointslices/${P}-e`, `/api/v1/nodes/${NODE}`, `/api/v1/namespaces/${PRIV}`, `/api/v1/namespaces/${TEAM}`,
    `/api/v1/namespaces/${PRIV}/configmaps/no-such`, `/api/v1/nodes/${P}-no-such`, `/api/v1/namespaces/${TEAM}/services/${P}-s`,
    `/apis/discovery.k8s.io/v1/namespaces/${TEAM}/endpointslices/${P}-e`,
  ];
  if (user !== 'viewer') gets.push(`/api/v1/namespaces/${TEAM}/pods/${teamPods[0] ?? ''}`, `/api/v1/namespaces/${TEAM}/configmaps/${teamCms[0] ?? ''}`);
  for (const g of gets) out.push(`${g}?resourceVersion=0`);
  return out;
}

before(async () => {
  const t0 = Date.now();
  [plain, remembering] = await Promise.all([
    startTestProxy(cluster, { cache: cacheConfigFrom({}) }),
    startTestProxy(cluster, { cache: cacheConfigFrom({ authorizationTtlSeconds: 300 }) }),
  ]);
  await populate();
  await Promise.all([proxyReady(plain, 120_000), proxyReady(remembering, 120_000)]);
  log(`prefix ${P}; proxies ready after ${Date.now() - t0} ms`);
});

after(async () => {
  await Promise.all([plain.stop(), remembering.stop()]);
  await cleanup();
  await closeAgents();
});

test('viewer outside team-a: the apiserver\'s own 403 for every cached resource, nothing from the cache', async () => {
  const paths = forbiddenFor('viewer');
  for (const [name, p] of proxies()) {
    // A read the viewer may do first: with remembered authorizations, nothing of it may carry over.
    await assertAllowedFromCache(p, `/api/v1/namespaces/${TEAM}/configmaps?resourceVersion=0`, { user: 'viewer' }, `${name}: viewer's own list`);
    for (const path of paths) await assertRefused(p, path, { user: 'viewer' }, 403, `${name}: viewer GET ${path}`);
    // ... and after the admin read them all (remembered for the admin, never for the viewer).
    for (const path of paths.filter((x) => x.includes('resourceVersion=0'))) {
      assert.equal((await call(cluster, p.url, path)).status < 500, true);
      await assertRefused(p, path, { user: 'viewer' }, 403, `${name}: viewer GET ${path} after the admin`);
    }
  }
  log(`viewer: ${paths.length} forbidden reads × 2 proxies (and again after the admin's) answered with the apiserver's 403`);
});

test('viewer inside team-a: its lists come from the cache and equal the apiserver\'s', async () => {
  const sel = `labelSelector=kcpauthz%3D${P}`;
  const reads = [
    `/api/v1/namespaces/${TEAM}/configmaps`, `/api/v1/namespaces/${TEAM}/pods`, `/api/v1/namespaces/${TEAM}/configmaps?${sel}`, `/api/v1/namespaces/${TEAM}/pods?${sel}`,
    `/api/v1/namespaces/${TEAM}/pods?${sel}&resourceVersion=0`, `/api/v1/namespaces/${TEAM}/configmaps?${sel}&limit=2`, `/api/v1/namespaces/${TEAM}/pods?${sel}&limit=1`,
    `/api/v1/namespaces/${TEAM}/pods?fieldSelector=spec.nodeName%3Dnode-1`, `/api/v1/namespaces/${TEAM}/configmaps?fieldSelector=metadata.name%3D${teamCms[1] ?? ''}`,
  ];
  for (const [name, p] of proxies()) {
    for (const path of reads) {
      const n = await assertAllowedFromCache(p, path, { user: 'viewer' }, `${name}: viewer ${path}`);
      if (path.includes(sel)) assert.ok(n >= 1, `${path}: the test's own objects are listed`);
    }
    for (const path of [`/api/v1/namespaces/${TEAM}/configmaps/${teamCms[2] ?? ''}?resourceVersion=0`, `/api/v1/namespaces/${TEAM}/pods/${teamPods[2] ?? ''}?resourceVersion=0`]) {
      const before = await served(p);
      const r = await call(cluster, p.url, path, { user: 'viewer' });
      assert.equal((await served(p)) - before, 1, `${name}: ${path} from the cache`);
      const d = await call(cluster, direct(), path, { user: 'viewer' });
      assert.equal(r.status, 200, r.text());
      assert.equal(r.text(), d.text(), path);
    }
  }
});

test('nobody: the apiserver\'s 403 on every cached resource, everywhere', async () => {
  const paths = forbiddenFor('nobody');
  for (const [name, p] of proxies()) {
    for (const path of paths) await assertRefused(p, path, { user: 'nobody' }, 403, `${name}: nobody GET ${path}`);
  }
});

test('no credentials, a bad token, a Basic header: the same 401/403 as the apiserver', async () => {
  const paths = [...forbiddenFor('anonymous').filter((_, i) => i % 3 === 0), `/api/v1/namespaces/${TEAM}/configmaps`, `/api/v1/namespaces/${TEAM}/configmaps?resourceVersion=0`];
  for (const [name, p] of proxies()) {
    // Remembered for the viewer: never for a request without the viewer's token.
    await assertAllowedFromCache(p, `/api/v1/namespaces/${TEAM}/configmaps?resourceVersion=0`, { user: 'viewer' }, `${name}: viewer's list`);
    for (const path of paths) {
      await assertRefused(p, path, { user: 'anonymous' }, 403, `${name}: anonymous GET ${path}`);
      // A bad bearer token is refused (401); a scheme the apiserver does not know leaves the request anonymous (403).
      for (const [authorization, code] of [['Bearer not-a-real-token', 401], [`Bearer ${cluster.info.users.viewer.token ?? ''}x`, 401], ['Basic dXNlcjpwYXNzd29yZA==', 403]] as const) {
        await assertRefused(p, path, { user: 'anonymous', headers: { authorization } }, code, `${name}: "${authorization.slice(0, 12)}…" GET ${path}`);
      }
    }
  }
});

test('node-1 (client certificate, impersonated): its own pods from the cache, everything else the apiserver\'s 403', async () => {
  const mine = ['/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&resourceVersion=0',
    '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&limit=1', `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&labelSelector=kcpauthz%3D${P}`];
  for (const [name, p] of proxies()) {
    for (const path of mine) {
      const n = await assertAllowedFromCache(p, path, { user: 'node1' }, `${name}: node-1 ${path}`);
      assert.ok(n >= 3, `${name}: node-1 sees the pods bound to it (${n})`);
    }
    const refused = ['/api/v1/pods', '/api/v1/pods?resourceVersion=0', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2&resourceVersion=0',
      '/api/v1/pods?fieldSelector=spec.nodeName!%3Dnode-1', '/api/v1/pods?labelSelector=app%3Dweb', `/api/v1/namespaces/${PRIV}/configmaps`, `/api/v1/namespaces/${PRIV}/configmaps?resourceVersion=0`,
      '/api/v1/configmaps?resourceVersion=0', `/api/v1/namespaces/${PRIV}?resourceVersion=0`, '/api/v1/namespaces',
      `/api/v1/namespaces/${PRIV}/configmaps/${privCms[0] ?? ''}?resourceVersion=0`];
    for (const path of refused) await assertRefused(p, path, { user: 'node1' }, 403, `${name}: node-1 GET ${path}`);
    // Whatever the apiserver says to these, the proxy says too.
    for (const path of [`/api/v1/namespaces/${PRIV}/pods?fieldSelector=spec.nodeName%3Dnode-1`, '/api/v1/pods?fieldSelector=spec.nodeName%3D%3Dnode-1',
      `/api/v1/namespaces/${PRIV}/pods/${privPods[0] ?? ''}?resourceVersion=0`, `/api/v1/namespaces/${PRIV}/pods/${privPods[1] ?? ''}?resourceVersion=0`,
      `/api/v1/nodes/${NODE}?resourceVersion=0`, '/api/v1/nodes?resourceVersion=0', '/api/v1/nodes/node-1?resourceVersion=0', '/api/v1/services?limit=1',
      `/api/v1/services?labelSelector=kcpauthz%3D${P}`, `/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kcpauthz%3D${P}`, `/apis/discovery.k8s.io/v1/namespaces/${PRIV}/endpointslices?resourceVersion=0`]) {
      const d = await call(cluster, direct(), path, { user: 'node1' });
      const r = await call(cluster, p.url, path, { user: 'node1' });
      if (d.status === 200 && r.status === 200 && !path.includes('/pods/') && !path.includes(`/nodes/`)) assert.deepEqual(itemBytes(r.body), itemBytes(d.body), `${name}: node-1 ${path}`);
      else if (d.status === 200) assert.equal(r.text(), d.text(), `${name}: node-1 ${path}`);
      else assertSameRefusal(d, r, `${name}: node-1 ${path}`);
    }
  }
});

test('a continue token the proxy issued to the admin opens nothing for anyone else', async () => {
  const privList = `/api/v1/namespaces/${PRIV}/configmaps?limit=2`;
  const allPods = '/api/v1/pods?limit=2';
  const node1Pods = '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&limit=1';
  const teamList = `/api/v1/namespaces/${TEAM}/configmaps?labelSelector=kcpauthz%3D${P}&limit=2`;
  for (const [name, p] of proxies()) {
    // The first page pinned "not older than 1": served from the cache whatever the freshness of
    // the resource (a consistent read of a quiet resource is forwarded, and its token would be the
    // apiserver's).
    const token = async (path: string): Promise<string> => {
      const r = await call(cluster, p.url, `${path}&resourceVersion=1&resourceVersionMatch=NotOlderThan`);
      assert.equal(r.status, 200, r.text());
      const t = continueOf(r) ?? '';
      assert.ok(t.startsWith('kcp1.'), `${name}: ${path} gave a proxy token: ${t}`);
      return t;
    };
    const privToken = await token(privList);
    const podsToken = await token(allPods);
    const nodeToken = await token(node1Pods);
    const teamToken = await token(teamList);
    const replays: Array<[TestUser, string, number | undefined, Record<string, string>?]> = [
      ['viewer', `${privList}&continue=${privToken}`, 403],
      ['nobody', `${privList}&continue=${privToken}`, 403],
      ['anonymous', `${privList}&continue=${privToken}`, 403],
      ['anonymous', `${privList}&continue=${privToken}`, 401, { authorization: 'Bearer not-a-real-token' }],
      ['node1', `${privList}&continue=${privToken}`, 403],
      ['viewer', `${allPods}&continue=${podsToken}`, 403],
      ['node1', `${allPods}&continue=${podsToken}`, 403],
      ['nobody', `${node1Pods}&continue=${nodeToken}`, 403],
      ['viewer', `${node1Pods}&continue=${nodeToken}`, 403],
      // The admin impersonating the viewer is the viewer.
      ['admin', `${privList}&continue=${privToken}`, 403, { 'impersonate-user': 'viewer', 'impersonate-group': 'team-a-viewers' }],
      // Another collection the user may read: the token is not for it, the apiserver's own 400.
      ['viewer', `/api/v1/namespaces/${TEAM}/configmaps?limit=2&continue=${privToken}`, 400],
      ['viewer', `/api/v1/namespaces/${TEAM}/pods?limit=2&continue=${podsToken}`, 400],
      ['node1', `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&limit=2&continue=${podsToken}`, 400],
      ['viewer', `/api/v1/namespaces/${TEAM}/configmaps?limit=2&continue=${teamToken}`, 400],
    ];
    for (const [user, path, expect, headers] of replays) {
      await assertRefused(p, path, { user, ...(headers ? { headers } : {}) }, expect ?? 403, `${name}: ${user}${headers ? ` ${JSON.stringify(headers)}` : ''} replays ${path}`);
    }
    // The same collection and selectors the user may read anyway: the page is no more than that user's own list.
    for (const [user, path, own] of [
      ['viewer', `${teamList}&continue=${teamToken}`, `/api/v1/namespaces/${TEAM}/configmaps?labelSelector=kcpauthz%3D${P}`],
      ['node1', `${node1Pods}&continue=${nodeToken}`, '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1'],
    ] as const) {
      const r = await call(cluster, p.url, path, { user });
      const allowed = await call(cluster, direct(), own, { user });
      assert.equal(allowed.status, 200);
      assert.equal(r.status, 200, `${name}: ${user} continues ${path}: ${r.text()}`);
      const ownItems = new Set(itemBytes(allowed.body).map((i) => (JSON.parse(i) as { metadata: { uid: string } }).metadata.uid));
      for (const i of itemBytes(r.body)) assert.ok(ownItems.has((JSON.parse(i) as { metadata: { uid: string } }).metadata.uid), `${name}: ${user} got an object it cannot list`);
    }
  }
});

test('remembered authorizations are per credential and per request', async () => {
  const p = remembering;
  const ns = `/api/v1/namespaces/${TEAM}/pods?resourceVersion=0&labelSelector=kcpauthz%3D${P}`;
  const nodePods = '/api/v1/pods?resourceVersion=0&fieldSelector=spec.nodeName%3Dnode-1';
  // Allowed once, for one user and one set of selectors ...
  await assertAllowedFromCache(p, ns, { user: 'viewer' }, 'viewer');
  await assertAllowedFromCache(p, ns, { user: 'viewer' }, 'viewer again');
  await assertAllowedFromCache(p, nodePods, { user: 'node1' }, 'node-1');
  await assertAllowedFromCache(p, nodePods, { user: 'admin' }, 'admin');
  // ... refused to everyone else, and for other selectors, exactly as the apiserver refuses.
  await assertRefused(p, ns, { user: 'nobody' }, 403, 'nobody after the viewer');
  await assertRefused(p, ns, { user: 'anonymous' }, 403, 'anonymous after the viewer');
  await assertRefused(p, ns, { user: 'node1' }, 403, 'node-1 after the viewer');
  await assertRefused(p, ns, { user: 'anonymous', headers: { authorization: `Bearer ${cluster.info.users.viewer.token ?? ''}x` } }, 401, 'viewer token with one more character');
  await assertRefused(p, ns, { user: 'anonymous', headers: { authorization: `Bearer ${(cluster.info.users.viewer.token ?? '').slice(0, -1)}` } }, 401, 'viewer token one character short');
  // Other spellings of the viewer's credentials are the viewer: allowed by the apiserver, so by the proxy.
  await assertAllowedFromCache(p, ns, { user: 'anonymous', headers: { authorization: `bearer ${cluster.info.users.viewer.token ?? ''}` } }, 'lower-case scheme');
  await assertAllowedFromCache(p, ns, { user: 'anonymous', headers: { authorization: `Bearer ${cluster.info.users.viewer.token ?? ''}`, 'x-remote-user': 'admin' } }, 'viewer with an X-Remote-User header');
  await assertRefused(p, nodePods.replace('node-1', 'node-2'), { user: 'node1' }, 403, 'node-1 for node-2');
  await assertRefused(p, '/api/v1/pods?resourceVersion=0', { user: 'node1' }, 403, 'node-1 without the selector');
  await assertRefused(p, nodePods, { user: 'viewer' }, 403, 'viewer after node-1 and the admin');
  await assertRefused(p, nodePods, { user: 'admin', headers: { 'impersonate-user': 'viewer', 'impersonate-group': 'team-a-viewers' } }, 403, 'admin as viewer after the admin');
  await assertRefused(p, nodePods, { user: 'admin', headers: { 'impersonate-user': 'system:node:node-2', 'impersonate-group': 'system:nodes' } }, 403, 'admin as node-2');
  await assertRefused(p, ns.replace(TEAM, PRIV), { user: 'viewer' }, 403, 'viewer in another namespace');
});

/** A request with the path exactly as written (undici would resolve dot segments). */
function rawGet(base: string, path: string, user: 'admin' | 'viewer' | 'nobody'): Promise<{ status: number; body: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: u.hostname, port: u.port, path, method: 'GET', ca: readFileSync(cluster.info.caFile),
      headers: { authorization: `Bearer ${cluster.info.users[user].token ?? ''}` },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('path spellings (dot segments, empty segments, escapes): read as the apiserver reads them', async () => {
  const cm = teamCms[0] ?? '';
  const paths = [
    `/api/v1/namespaces/${TEAM}/../${PRIV}/configmaps`, `/api/v1/namespaces/${PRIV}/configmaps/../../${TEAM}/configmaps`, `/api/v1/namespaces/${TEAM}//configmaps`,
    `/api/v1/namespaces/team%2Da/configmaps`, `/api/v1/namespaces/${TEAM}/configmaps/`, `/api/v1/namespaces/${TEAM}/./configmaps`, `/api/v1/./namespaces/${TEAM}/configmaps`,
    `/api//v1/namespaces/${TEAM}/configmaps`, `//api/v1/namespaces/${TEAM}/configmaps`, `/api/v1/namespaces/${TEAM}/configmaps%2F`, `/api/v1/namespaces/${PRIV}%2Fconfigmaps`,
    `/api/v1/namespaces%2F${PRIV}%2Fconfigmaps?resourceVersion=0`, `/api%2Fv1/namespaces/${PRIV}/configmaps`, `/api/v1/namespaces/${PRIV}/configmaps%2F${privCms[0] ?? ''}?resourceVersion=0`,
    `/api/v1/namespaces/${TEAM}/configmaps/${cm}%2F..%2F..%2F..%2F${PRIV}%2Fconfigmaps?resourceVersion=0`, `/api/v1/namespaces/${TEAM}/configmaps?fieldSelector=metadata.namespace%3D${PRIV}`,
    `/api/v1/namespaces/${TEAM}/configmaps?labelSelector=kcpauthz%3D${P}&labelSelector=`, `/api/v1/namespaces/${TEAM}/configmaps/${cm.replace(/^c/, '%63')}?resourceVersion=0`,
  ];
  const strip = (b: Buffer) => b.toString('utf8').replace(/^(\{"kind":"\w+List","apiVersion":"v1","metadata":\{"resourceVersion":)"\d+"/, '$1"RV"');
  for (const [name, p] of proxies()) {
    for (const user of ['viewer', 'nobody', 'admin'] as const) {
      for (const path of paths) {
        let ok = false;
        let last = '';
        for (let attempt = 0; attempt < 4 && !ok; attempt++) {
          const r = await rawGet(p.url, path, user);
          const d = await rawGet(direct(), path, user);
          last = `direct ${d.status} ${d.body.toString('utf8', 0, 200)} / proxied ${r.status} ${r.body.toString('utf8', 0, 200)}`;
          ok = r.status === d.status && strip(r.body) === strip(d.body);
        }
        assert.ok(ok, `${name}: ${user} GET ${path}: ${last}`);
      }
    }
  }
});

// Last: the honest retries above (a consistent read forwarded because its freshness could not be
// proved at once), counted. Each was checked to have been behind (its store short of the
// apiserver's revision), so a proxy forwarding reads it could have served fails there, and one that
// stopped serving allowed reads from the cache fails each check after six attempts; each retry
// waits for the store to reach the apiserver's revision first (a store not there within
// CATCH_UP_MS fails), so a busy machine's slow bookmark is not a failure. What this count
// adds is how long a store stays behind: even an idle cluster's apiserver writes (its lease, about
// twice every 10 s), each write to another resource leaves a store behind until its next bookmark
// about a second later, and a quiet resource's read in that window is forwarded — about a fifth of
// the lists here (3 to 13 of 36 in ten full runs). Over half means stores stay behind for seconds
// after a write: bookmarks no longer keep them current.
test('allowed lists were served from the cache at the first attempt, but for a few freshness forwards', (t) => {
  t.diagnostic(`${allowedChecks} allowed lists checked, ${freshnessRetries} attempts forwarded for freshness and tried again once the store caught up (slowest ${slowestCatchUpMs} ms)`);
  assert.ok(allowedChecks > 0);
  assert.ok(freshnessRetries <= Math.ceil(allowedChecks / 2), `${freshnessRetries} freshness forwards for ${allowedChecks} allowed lists`);
});
