// A @kubernetes/client-node informer (list, then watch from the list's resourceVersion) pointed at
// the proxy: it syncs, follows adds/updates/deletes made straight at the apiserver, and ends with
// the same cache as a direct LIST. The proxy's metrics show the list and the watch went through it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { kubeconfigFor } from '../cluster/cluster.js';

const cluster = sharedCluster();
let proxy: TestProxy;
let tmp: string;
let ns: string;
before(async () => {
  proxy = await startTestProxy(cluster);
  tmp = mkdtempSync(join(tmpdir(), 'kcp-informer-'));
  ns = `inf-${Date.now().toString(36)}`;
  const r = await call(cluster, direct(), '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }) });
  assert.equal(r.status, 201, r.text());
});
after(async () => {
  await call(cluster, direct(), `/api/v1/namespaces/${ns}`, { method: 'DELETE' });
  await proxy.stop();
  await closeAgents();
  rmSync(tmp, { recursive: true, force: true });
});

const direct = () => cluster.info.apiservers[0]?.url ?? '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(what: string, check: () => Promise<string | undefined> | string | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last === undefined) return;
    await sleep(50);
  }
  assert.fail(`${what}: ${last ?? ''}`);
}

function ok(r: Reply, status: number, what: string): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text().slice(0, 300)}`);
}

const cm = (name: string, v: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { app: 'informer' } }, data: { v } });

/** name → "resourceVersion data" of a direct LIST. */
async function directState(): Promise<Map<string, string>> {
  const r = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`);
  ok(r, 200, 'direct list');
  const body = r.json() as { items: Array<{ metadata: { name: string; resourceVersion: string }; data?: Record<string, string> }> };
  return new Map(body.items.map((i) => [i.metadata.name, `${i.metadata.resourceVersion} ${JSON.stringify(i.data ?? {})}`]));
}

function cacheState(list: ReadonlyArray<V1ConfigMap>): Map<string, string> {
  return new Map(list.map((i) => [i.metadata?.name ?? '', `${i.metadata?.resourceVersion ?? ''} ${JSON.stringify(i.data ?? {})}`]));
}

function diff(a: Map<string, string>, b: Map<string, string>): string | undefined {
  const out: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) out.push(`${k}: cache ${v} / direct ${b.get(k) ?? '(none)'}`);
  for (const k of b.keys()) if (!a.has(k)) out.push(`${k}: missing from the cache`);
  return out.length ? out.slice(0, 5).join('; ') : undefined;
}

/** The value of one sample of the proxy's metrics, matching all the given labels. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const res = await request(`${proxy.metricsUrl}/metrics`);
  const text = await res.body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([^{ ]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = new Map((m[2] ?? '').split(',').map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 2, -1)] as const; }));
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

test('a client-node informer syncs through the proxy and follows changes made directly', async () => {
  for (let i = 0; i < 20; i++) ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body: cm(`inf-${i}`, '0') }), 201, `create inf-${i}`);

  const kcFile = join(tmp, 'admin-via-proxy.kubeconfig');
  writeFileSync(kcFile, kubeconfigFor(cluster.info, cluster.info.users.admin, proxy.url));
  const kc = new KubeConfig();
  kc.loadFromFile(kcFile);
  assert.equal(kc.getCurrentCluster()?.server, proxy.url);
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1ConfigMap>(kc, `/api/v1/namespaces/${ns}/configmaps`, () => core.listNamespacedConfigMap({ namespace: ns }));
  const seen = { add: 0, update: 0, delete: 0 };
  const errors: unknown[] = [];
  informer.on('add', () => { seen.add++; });
  informer.on('update', () => { seen.update++; });
  informer.on('delete', () => { seen.delete++; });
  informer.on('error', (err: unknown) => { errors.push(err); });

  const listsBefore = await metric('kube_cache_proxy_requests_total', { verb: 'list', resource: 'configmaps', code: '200' });
  const watchesBefore = await metric('kube_cache_proxy_requests_total', { verb: 'watch', resource: 'configmaps', code: '200' });
  await informer.start();
  try {
    await eventually('initial sync', () => (informer.list(ns).length === 20 ? undefined : `${informer.list(ns).length} objects`));
    assert.equal(seen.add, 20);
    // The watch is open through the proxy (counted when it ends; in flight until then).
    await eventually('watch in flight at the proxy', async () => {
      const n = await metric('kube_cache_proxy_inflight_requests', { kind: 'long_running' });
      return n >= 1 ? undefined : `long_running in flight: ${n}`;
    });
    assert.equal(await metric('kube_cache_proxy_requests_total', { verb: 'list', resource: 'configmaps', code: '200' }), listsBefore + 1);

    // Changes straight at the apiserver: 5 adds, 5 updates, 5 deletes.
    for (let i = 20; i < 25; i++) ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body: cm(`inf-${i}`, '0') }), 201, `create inf-${i}`);
    for (let i = 0; i < 5; i++) {
      ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps/inf-${i}`, {
        method: 'PATCH', body: JSON.stringify({ data: { v: '1' } }), headers: { 'content-type': 'application/merge-patch+json' },
      }), 200, `patch inf-${i}`);
    }
    for (let i = 5; i < 10; i++) ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps/inf-${i}`, { method: 'DELETE' }), 200, `delete inf-${i}`);
    ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps/inf-0`, { method: 'PUT', body: cm('inf-0', '2') }), 200, 'replace inf-0');

    // The cache converges on a direct LIST: same names, resourceVersions and data.
    const want = await directState();
    assert.equal(want.size, 20);
    await eventually('cache equals a direct LIST', () => diff(cacheState(informer.list(ns)), want));
    assert.equal(informer.get('inf-0', ns)?.data?.['v'], '2');
    assert.equal(informer.get('inf-7', ns), undefined);
    assert.equal(informer.get('inf-24', ns)?.data?.['v'], '0');
    assert.deepEqual(seen, { add: 25, update: 6, delete: 5 });
    assert.deepEqual(errors, []);
    // Still one list: the watch never broke and made the informer relist.
    assert.equal(await metric('kube_cache_proxy_requests_total', { verb: 'list', resource: 'configmaps', code: '200' }), listsBefore + 1);
  } finally {
    await informer.stop();
  }
  // Stopping the informer ends its watch through the proxy, which then counts it.
  await eventually('watch counted after the informer stopped', async () => {
    const n = await metric('kube_cache_proxy_requests_total', { verb: 'watch', resource: 'configmaps', code: '200' });
    return n >= watchesBefore + 1 ? undefined : `watches counted: ${n}`;
  });
  await eventually('no watch left in flight', async () => {
    const n = await metric('kube_cache_proxy_inflight_requests', { kind: 'long_running' });
    return n === 0 ? undefined : `long_running in flight: ${n}`;
  });
  // And the cache left behind still equals the apiserver's state.
  const final = diff(cacheState(informer.list(ns)), await directState());
  assert.equal(final, undefined);
});
