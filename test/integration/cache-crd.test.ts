// A custom resource cached by the proxy: its list body (keys sorted, items with apiVersion/kind)
// equals the apiserver's, byte for byte apart from the list's own resourceVersion.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { proxyReady, sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call } from '../helpers/http.js';
import { until } from '../helpers/wait.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';

const cluster = sharedCluster();
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const suffix = Date.now().toString(36);
const group = `kcp-${suffix}.example.com`;
const plural = 'widgets';
let proxy: TestProxy;

before(async () => {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group, scope: 'Namespaced',
      names: { plural, singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
      versions: [{
        name: 'v1', served: true, storage: true,
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      }],
    },
  };
  const r = await call(cluster, direct(), '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: JSON.stringify(crd) });
  assert.equal(r.status, 201, r.text());
  await until('the CRD to be served', async () => (await call(cluster, direct(), `/apis/${group}/v1/${plural}`)).status === 200, 30_000);
  for (const ns of ['team-a', 'default']) {
    for (let i = 0; i < 5; i++) {
      const w = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: `w-${i}`, namespace: ns, labels: { n: String(i % 2) } }, spec: { size: i, note: '<b>&</b>', z: { b: 1, a: [2, 1] } } };
      const c = await call(cluster, direct(), `/apis/${group}/v1/namespaces/${ns}/${plural}`, { method: 'POST', body: JSON.stringify(w) });
      assert.equal(c.status, 201, c.text());
    }
  }
  proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({ resources: [`${plural}.${group}/v1`], indexedFields: [] }) });
  await proxyReady(proxy);
});

after(async () => {
  await proxy?.stop();
  await call(cluster, direct(), `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.${group}`, { method: 'DELETE' });
});

const withoutListRV = (b: string) => b.replace(/"resourceVersion":"\d+"\}\}\n$/, '"resourceVersion":"X"}}\n');

test('custom resources: list bodies from the cache equal the apiserver\'s', async () => {
  const before = await (await fetch(`${proxy.metricsUrl}/metrics`)).text();
  for (const path of [
    `/apis/${group}/v1/${plural}`,
    `/apis/${group}/v1/namespaces/team-a/${plural}`,
    `/apis/${group}/v1/${plural}?labelSelector=n%3D1`,
    `/apis/${group}/v1/${plural}?fieldSelector=metadata.namespace%3Ddefault`,
    `/apis/${group}/v1/${plural}?resourceVersion=0`,
  ]) {
    const d = await call(cluster, direct(), path);
    const p = await call(cluster, proxy.url, path);
    assert.equal(p.status, 200, `${path}: ${p.text()}`);
    assert.equal(withoutListRV(p.text()), withoutListRV(d.text()), path);
  }
  const paged = await call(cluster, proxy.url, `/apis/${group}/v1/${plural}?limit=3`);
  const body = paged.json() as { metadata: { continue?: string; remainingItemCount?: number }; items: unknown[] };
  assert.equal(body.items.length, 3);
  assert.equal(body.metadata.remainingItemCount, 7);
  assert.match(paged.text(), /^\{"apiVersion":"[^"]+","items":\[.*\],"kind":"WidgetList","metadata":\{"continue":"kcp1\.[^"]+","remainingItemCount":7,"resourceVersion":"\d+"\}\}\n$/s);
  const get = await call(cluster, proxy.url, `/apis/${group}/v1/namespaces/team-a/${plural}/w-1?resourceVersion=0`);
  const getDirect = await call(cluster, direct(), `/apis/${group}/v1/namespaces/team-a/${plural}/w-1?resourceVersion=0`);
  assert.equal(get.text(), getDirect.text());
  const missing = await call(cluster, proxy.url, `/apis/${group}/v1/namespaces/team-a/${plural}/nope?resourceVersion=0`);
  const missingDirect = await call(cluster, direct(), `/apis/${group}/v1/namespaces/team-a/${plural}/nope?resourceVersion=0`);
  assert.equal(missing.status, 404);
  assert.equal(missing.text(), missingDirect.text());
  const after = await (await fetch(`${proxy.metricsUrl}/metrics`)).text();
  const served = (m: string) => [...m.matchAll(/^kube_cache_proxy_cache_served_total\{resource="widgets\.[^"]+",[^}]*\} (\d+)/gm)].reduce((n, x) => n + Number(x[1]), 0);
  assert.ok(served(after) - served(before) >= 7, `the reads were answered from the cache:\n${after.split("\n").filter((l) => l.includes("widgets") && !l.startsWith("#")).join("\n")}`);
});
