// The cache when the proxy's own credentials lose the right to list/watch a cached resource: the
// proxy runs as a ServiceAccount made for the test (token by TokenRequest) whose ClusterRole grants
// list/watch of configmaps and namespaces. With its ClusterRoleBinding deleted, the apiserver
// answers 403 to the reflector's progress watches, re-watches and LISTs (an older main watch may
// still deliver events: the apiserver authorizes a watch when it starts). Within --cache-stale-after
// plus a margin, /readyz must fail naming configmaps and the refusal, and a resourceVersion=0 LIST
// must be forwarded (the client gets the apiserver's answer; the cache's served counter does not
// grow). With the binding re-created, the proxy must be ready again and serve from the cache.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { scrape, total, type Sample } from '../helpers/cache-workload.js';
import { until } from '../helpers/wait.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';

const cluster = sharedCluster();
const direct = cluster.info.apiservers[0]?.url ?? '';
const STALE_AFTER_S = 3;
/**
 * What may pass between the binding's deletion and /readyz failing beyond --cache-stale-after: the
 * apiserver's RBAC informer seeing the deletion (milliseconds), two refused progress watches (one
 * each --cache-bookmark-interval, 0.5 s), the reflector's health tick (1 s) and this test's polling.
 */
const MARGIN_S = 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function must(path: string, method: 'POST' | 'DELETE', body?: unknown): Promise<Reply> {
  const r = await call(cluster, direct, path, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${r.text()}`);
  return r;
}

const dir = mkdtempSync(join(tmpdir(), 'kcp-refused-'));
let proxy: TestProxy | undefined;
after(async () => {
  await proxy?.stop();
  await closeAgents();
  rmSync(dir, { recursive: true, force: true });
});

test('the proxy\'s own list/watch refused (its binding deleted): unready within the staleness bound, resourceVersion=0 reads forwarded; binding back: served from the cache again', { timeout: 180_000 }, async (t) => {
  const run = randomBytes(3).toString('hex');
  const ns = `refused-${run}`;
  const sa = 'kcp-proxy';
  const role = `kcp-refused-${run}`;
  await must('/api/v1/namespaces', 'POST', { metadata: { name: ns } });
  await must(`/api/v1/namespaces/${ns}/serviceaccounts`, 'POST', { metadata: { name: sa } });
  await must('/apis/rbac.authorization.k8s.io/v1/clusterroles', 'POST', {
    metadata: { name: role },
    rules: [{ apiGroups: [''], resources: ['configmaps', 'namespaces'], verbs: ['list', 'watch'] }],
  });
  const binding = { metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }] };
  const bindingPath = `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${role}`;
  await must('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', 'POST', binding);
  t.after(async () => {
    await call(cluster, direct, bindingPath, { method: 'DELETE' });
    await call(cluster, direct, `/apis/rbac.authorization.k8s.io/v1/clusterroles/${role}`, { method: 'DELETE' });
    await call(cluster, direct, `/api/v1/namespaces/${ns}`, { method: 'DELETE' });
  });
  const tr = (await must(`/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, 'POST', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } })).json();
  const token = (tr as { status?: { token?: unknown } }).status?.token;
  assert.equal(typeof token, 'string');
  const kubeconfig = join(dir, 'proxy.kubeconfig');
  writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'proxy',
    clusters: [{ name: 'test', cluster: { server: direct, 'certificate-authority': cluster.info.caFile } }],
    users: [{ name: 'proxy', user: { token } }],
    contexts: [{ name: 'proxy', context: { cluster: 'test', user: 'proxy' } }],
  }), { mode: 0o600 });
  const cmPath = `/api/v1/namespaces/${ns}/configmaps`;
  await must(cmPath, 'POST', { metadata: { name: 'before' }, data: { v: '1' } });

  proxy = await startTestProxy(cluster, {
    kubeconfig,
    cache: cacheConfigFrom({ resources: ['configmaps', 'namespaces'], indexedFields: [], staleAfterSeconds: STALE_AFTER_S }),
  });
  const p = proxy;
  const metrics = () => scrape(p.metricsUrl);
  const readyz = async () => {
    const r = await fetch(`${p.metricsUrl}/readyz?verbose`);
    return { status: r.status, body: await r.text() };
  };
  const served = (m: readonly Sample[]) => total(m, 'kube_cache_proxy_cache_served_total', (l) => l['resource'] === 'configmaps');
  const fallbacks = (m: readonly Sample[]) => total(m, 'kube_cache_proxy_cache_fallbacks_total', (l) => l['resource'] === 'configmaps' && l['reason'] === 'stale');
  /** A resourceVersion=0 LIST of the test namespace's ConfigMaps as admin through the proxy: the names, and whether the cache answered. */
  const list = async (): Promise<{ status: number; names: string[]; served: boolean; staleFallback: boolean }> => {
    const before = await metrics();
    const r = await call(cluster, p.url, `${cmPath}?resourceVersion=0`);
    const afterM = await metrics();
    const items = (r.json() as { items?: Array<{ metadata?: { name?: string } }> }).items ?? [];
    return { status: r.status, names: items.map((i) => i.metadata?.name ?? '').sort(), served: served(afterM) > served(before), staleFallback: fallbacks(afterM) > fallbacks(before) };
  };

  await until('the proxy to be ready', async () => (await readyz()).status === 200, 60_000);
  const ok = await list();
  assert.equal(ok.status, 200);
  assert.ok(ok.served, 'served from the cache while the proxy may list/watch');
  assert.deepEqual(ok.names, ['before']);

  // The binding goes: every LIST and new watch of the proxy's is refused.
  await must(bindingPath, 'DELETE');
  const deleted = Date.now();
  const staleIn = await until('/readyz to fail on configmaps', async () => {
    const r = await readyz();
    return r.status === 503 && /^\[-\]cache:configmaps failed: stale: the apiservers refuse the proxy's own list\/watch \(403\)/m.test(r.body);
  }, 60_000);
  t.diagnostic(`unready ${staleIn} ms after the binding was deleted (bound ${STALE_AFTER_S} s + ${MARGIN_S} s margin)`);
  assert.ok(staleIn <= (STALE_AFTER_S + MARGIN_S) * 1000, `unready only ${staleIn} ms after the binding was deleted`);
  assert.ok(Date.now() - deleted >= (STALE_AFTER_S - 1) * 1000, 'unready before the staleness bound');
  assert.match((await readyz()).body, /^\[-\]cache:namespaces failed: stale/m, 'namespaces lost the permission too');
  assert.equal(total(await metrics(), 'kube_cache_proxy_cache_stale', (l) => l['resource'] === 'configmaps'), 1);
  // A write the proxy's store may or may not see; the forwarded read must.
  await must(cmPath, 'POST', { metadata: { name: 'while-refused' }, data: { v: '2' } });
  const refused = await list();
  assert.equal(refused.status, 200, 'the client gets what the apiserver says (admin may list)');
  assert.equal(refused.served, false, 'a resourceVersion=0 LIST was served from a store the proxy may no longer watch');
  assert.ok(refused.staleFallback, 'forwarded as stale');
  assert.deepEqual(refused.names, ['before', 'while-refused']);
  // Still unready a while later: nothing has succeeded since.
  await sleep(2_000);
  assert.equal((await readyz()).status, 503);
  assert.equal((await list()).served, false);

  // The binding is back: the reflector's next watch or LIST is answered, a bookmark proves the store current.
  await must('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', 'POST', binding);
  const readyIn = await until('the proxy to be ready again', async () => (await readyz()).status === 200, 60_000);
  t.diagnostic(`ready ${readyIn} ms after the binding was re-created`);
  await must(cmPath, 'POST', { metadata: { name: 'after' }, data: { v: '3' } });
  await until('the cache to hold the ConfigMap written after the binding came back', async () => (await list()).names.includes('after'), 20_000);
  const back = await list();
  assert.ok(back.served, 'served from the cache again');
  assert.deepEqual(back.names, ['after', 'before', 'while-refused']);
});
