// The watch-fed cache when apiservers go away, stall or lag, on a cluster of its own (three
// apiservers). The proxy reaches each apiserver through a TCP relay (test/helpers/tcp-relay.ts), so
// connections can be broken without killing processes:
// (a) the apiserver under the cache's watch goes silent (its relay blackholed: connections open, no
//     byte either way); changes made afterwards must reach the cache within a bound, by a watch
//     resumed on another apiserver, without a relist;
// (b) the apiserver under the cache's watch is killed; the watch resumes on another one, no relist,
//     no event missed (the cache then lists the same items as an apiserver, byte for byte);
// (c) every apiserver unreachable past the staleness bound: resourceVersion=0 reads and new watches
//     are forwarded (reason `stale`), /readyz is 503 naming the resource; reachable again, the
//     cache serves and the proxy is ready again;
// (d) a configured CRD that does not exist does not keep the proxy unready, its reads are
//     forwarded, the other resources are served from the cache; created later, it gets cached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../cluster/cluster.js';
import { startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { TcpRelay } from '../helpers/tcp-relay.js';
import { scrape, total, type Sample } from '../helpers/cache-workload.js';
import { until } from '../helpers/wait.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { topLevelMember } from '../../cache/json-scan.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const STALE_AFTER_S = 3;

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** `metadata.resourceVersion` of a JSON object (a list, or an item). */
function rvOf(v: unknown): bigint {
  const rv = record(record(v)?.['metadata'])?.['resourceVersion'];
  if (typeof rv !== 'string') throw new Error(`no resourceVersion in ${JSON.stringify(v).slice(0, 200)}`);
  return BigInt(rv);
}

test('the cache through silent connections, a killed apiserver, an outage past the staleness bound, and a missing CRD', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-resilience-'));
  const cluster = await TestCluster.up({ dir, apiservers: 3 });
  const direct = (i: number) => cluster.info.apiservers[i]?.url ?? '';
  const relays: TcpRelay[] = [];
  let proxy: TestProxy | undefined;
  let ok = false;
  let passed = 0;
  try {
    for (const a of cluster.info.apiservers) relays.push(await TcpRelay.start({ host: new URL(a.url).hostname, port: a.port }));
    const run = randomBytes(3).toString('hex');
    const ns = `resilience-${run}`;
    const group = `kcp-${run}.example.com`;
    const crdResource = `gadgets.${group}`;
    assert.equal((await call(cluster, direct(0), '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ metadata: { name: ns } }) })).status, 201);
    const cmPath = `/api/v1/namespaces/${ns}/configmaps`;
    /** Writes a ConfigMap straight at apiserver `i`; returns its resourceVersion. */
    const write = async (name: string, value: string, i = 0): Promise<bigint> => {
      const body = JSON.stringify({ metadata: { name, namespace: ns }, data: { value } });
      let r = await call(cluster, direct(i), `${cmPath}/${name}`, { method: 'PUT', body });
      if (r.status === 404) r = await call(cluster, direct(i), cmPath, { method: 'POST', body });
      assert.ok(r.status === 200 || r.status === 201, `write ${name}: ${r.status} ${r.text()}`);
      return rvOf(r.json());
    };
    for (let i = 0; i < 5; i++) await write(`seed-${i}`, 'seed');

    proxy = await startTestProxy(cluster, {
      upstreams: relays.map((r) => r.url),
      cache: cacheConfigFrom({ resources: ['configmaps', 'namespaces', `${crdResource}/v1`], indexedFields: [], staleAfterSeconds: STALE_AFTER_S }),
    });
    const p = proxy;
    const metrics = () => scrape(p.metricsUrl);
    const readyz = async (verbose = false) => {
      const r = await fetch(`${p.metricsUrl}/readyz${verbose ? '?verbose' : ''}`);
      return { status: r.status, body: await r.text() };
    };
    const relists = (m: readonly Sample[]) => total(m, 'kube_cache_proxy_cache_relists_total', (l) => l['resource'] === 'configmaps' && l['reason'] !== 'initial');
    const restarts = (m: readonly Sample[], reason: string) => total(m, 'kube_cache_proxy_cache_watch_restarts_total', (l) => l['resource'] === 'configmaps' && l['reason'] === reason);
    const cacheRV = async () => BigInt(total(await metrics(), 'kube_cache_proxy_cache_resource_version', (l) => l['resource'] === 'configmaps'));
    /** A read through the proxy, and whether the cache answered it (served_total grew) or it was forwarded, and why. */
    const viaProxy = async (resource: string, path: string): Promise<{ reply: Reply; served: boolean; fallbacks: Record<string, number> }> => {
      const served = (m: readonly Sample[]) => total(m, 'kube_cache_proxy_cache_served_total', (l) => l['resource'] === resource);
      const before = await metrics();
      const reply = await call(cluster, p.url, path);
      const after = await metrics();
      const fallbacks: Record<string, number> = {};
      for (const s of after) {
        if (s.name !== 'kube_cache_proxy_cache_fallbacks_total' || s.labels['resource'] !== resource) continue;
        const was = before.find((b) => b.name === s.name && JSON.stringify(b.labels) === JSON.stringify(s.labels))?.value ?? 0;
        if (s.value > was) fallbacks[`${s.labels['verb']}/${s.labels['reason']}`] = s.value - was;
      }
      return { reply, served: served(after) > served(before), fallbacks };
    };

    /**
     * Puts the cache's watches on apiserver 0: the others refuse and drop their connections for a
     * moment, so whatever was open there resumes on 0, the only one left.
     */
    const pinWatchesTo0 = async () => {
      relays[1]?.setMode('refuse');
      relays[2]?.setMode('refuse');
      relays[1]?.dropAll();
      relays[2]?.dropAll();
      try {
        const rv = await write(`pin-${Date.now()}`, 'x');
        await until('the cache to follow on apiserver 0', async () => (await cacheRV()) >= rv, 45_000);
      } finally {
        relays[1]?.setMode('pass');
        relays[2]?.setMode('pass');
      }
      // The balancer takes the other two back once their health checks pass.
      await sleep(3_000);
    };

    // (d), first half: the CRD does not exist, yet the proxy becomes ready.
    const readyIn = await until('the proxy to be ready with a configured CRD that does not exist', async () => (await readyz()).status === 200, 90_000);
    t.diagnostic(`ready in ${readyIn} ms with ${crdResource} missing`);

    await t.test('(a) the apiserver under the watch blackholed: the stalled watch is replaced, later changes reach the cache, no relist', async () => {
      await pinWatchesTo0();
      const m0 = await metrics();
      relays[0]?.setMode('blackhole');
      const started = Date.now();
      let last = 0n;
      for (let i = 0; i < 3; i++) last = await write(`after-blackhole-${i}`, String(i));
      const caughtUp = await until('the cache to reach the writes made after the blackhole', async () => (await cacheRV()) >= last, 45_000);
      const m1 = await metrics();
      t.diagnostic(`cache caught up ${Date.now() - started} ms after the blackhole (${caughtUp} ms after the writes); stalled restarts ${restarts(m1, 'stalled') - restarts(m0, 'stalled')}`);
      assert.ok(restarts(m1, 'stalled') > restarts(m0, 'stalled'), 'the watch was cut as stalled');
      assert.equal(relists(m1) - relists(m0), 0, 'no relist');
      const list = await viaProxy('configmaps', `${cmPath}?resourceVersion=0`);
      assert.equal(list.reply.status, 200);
      assert.ok(list.served, `served from the cache (fallbacks ${JSON.stringify(list.fallbacks)})`);
      const names = (record(list.reply.json())?.['items'] as unknown[]).map((o) => String(record(record(o)?.['metadata'])?.['name']));
      for (let i = 0; i < 3; i++) assert.ok(names.includes(`after-blackhole-${i}`), `after-blackhole-${i} in ${names.join(',')}`);
      // Its connections have holes now: cut them, and let it serve again.
      relays[0]?.setMode('pass');
      relays[0]?.dropAll();
      passed++;
    });

    await t.test('(d) the missing CRD: proxy ready, its reads forwarded, other resources served from the cache', async () => {
      const verbose = await readyz(true);
      assert.equal(verbose.status, 200, verbose.body);
      assert.match(verbose.body, new RegExp(`^\\[\\+\\]cache:${crdResource.replace(/\./g, '\\.')} ok \\(not cached, reads forwarded: .+\\)$`, 'm'));
      assert.match(verbose.body, /^\[\+\]cache:configmaps ok$/m);
      assert.match(verbose.body, /readyz check passed\n$/);
      assert.equal(total(await metrics(), 'kube_cache_proxy_cache_not_cached', (l) => l['resource'] === crdResource), 1);
      const path = `/apis/${group}/v1/namespaces/${ns}/gadgets`;
      const forwarded = await call(cluster, p.url, path);
      const straight = await call(cluster, direct(0), path);
      assert.equal(forwarded.status, 404);
      assert.equal(forwarded.text(), straight.text());
      const cms = await viaProxy('configmaps', `${cmPath}?resourceVersion=0`);
      assert.equal(cms.reply.status, 200);
      assert.ok(cms.served, 'configmaps served from the cache');
      passed++;
    });

    await t.test('(b) the apiserver under the watch is killed: the watch resumes on another, no relist, no event missed', async () => {
      await pinWatchesTo0();
      const m0 = await metrics();
      // Writers keep writing at apiservers 1 and 2 while 0 dies.
      let stop = false;
      let writes = 0;
      let last = 0n;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          last = await write(`during-kill-${i % 20}`, String(i), 1 + (i % 2));
          writes++;
        }
      })();
      await sleep(500);
      await cluster.stopApiserver(0, 'SIGKILL');
      const killed = Date.now();
      await sleep(3_000);
      stop = true;
      await writer;
      const caughtUp = await until('the cache to reach the last write', async () => (await cacheRV()) >= last, 45_000);
      const m1 = await metrics();
      t.diagnostic(`${writes} writes; cache caught up ${Date.now() - killed} ms after the kill (${caughtUp} ms after the last write); restarts: connection ${restarts(m1, 'connection') - restarts(m0, 'connection')}, stalled ${restarts(m1, 'stalled') - restarts(m0, 'stalled')}`);
      assert.equal(relists(m1) - relists(m0), 0, 'no relist');
      assert.ok(restarts(m1, 'connection') + restarts(m1, 'stalled') + restarts(m1, 'closed') > restarts(m0, 'connection') + restarts(m0, 'stalled') + restarts(m0, 'closed'), 'the watch broke and was resumed');
      // No event missed: the cache's items are the apiserver's, byte for byte.
      const fromCache = await viaProxy('configmaps', `${cmPath}?resourceVersion=0`);
      assert.ok(fromCache.served, `served from the cache (fallbacks ${JSON.stringify(fromCache.fallbacks)})`);
      const straight = await call(cluster, direct(1), cmPath);
      assert.ok(rvOf(fromCache.reply.json()) >= last);
      assert.equal(topLevelMember(fromCache.reply.body, 'items')?.toString(), topLevelMember(straight.body, 'items')?.toString());
      await cluster.startApiserver(0);
      passed++;
    });

    await t.test('(c) every apiserver unreachable past the staleness bound: no reads of any state or new watches from the store, /readyz names the resource; back: served again', async () => {
      const outage = async () => {
        const staleIn = await until('/readyz to fail on configmaps', async () => {
          const r = await readyz();
          return r.status === 503 && /^\[-\]cache:configmaps failed: stale/m.test(r.body);
        }, 30_000);
        t.diagnostic(`stale ${staleIn} ms after every connection was cut (bound ${STALE_AFTER_S} s)`);
        // Out of touch since the last thing heard, at most a progress interval before the cut.
        assert.ok(staleIn >= (STALE_AFTER_S - 1) * 1000, `stale ${staleIn} ms after the cut: before the bound`);
        assert.equal(total(await metrics(), 'kube_cache_proxy_cache_stale', (l) => l['resource'] === 'configmaps'), 1);
        const list = await viaProxy('configmaps', `${cmPath}?resourceVersion=0`);
        assert.equal(list.served, false, 'a resourceVersion=0 LIST was served from a stale store');
        assert.deepEqual(list.fallbacks, { 'list/stale': 1 });
        const get = await viaProxy('configmaps', `${cmPath}/seed-0?resourceVersion=0`);
        assert.equal(get.served, false);
        assert.deepEqual(get.fallbacks, { 'get/stale': 1 });
        const watch = await viaProxy('configmaps', `${cmPath}?watch=1&resourceVersion=0&timeoutSeconds=1`);
        assert.equal(watch.served, false);
        assert.deepEqual(watch.fallbacks, { 'watch/stale': 1 });
      };
      for (const r of relays) {
        r.setMode('refuse');
        r.dropAll();
      }
      try {
        await outage();
      } finally {
        for (const r of relays) r.setMode('pass');
      }
      const back = Date.now();
      const readyAgain = await until('the proxy to be ready again', async () => (await readyz()).status === 200, 60_000);
      t.diagnostic(`ready again ${readyAgain} ms after the apiservers were reachable`);
      assert.equal(total(await metrics(), 'kube_cache_proxy_cache_stale', (l) => l['resource'] === 'configmaps'), 0);
      const again = await viaProxy('configmaps', `${cmPath}?resourceVersion=0`);
      assert.equal(again.reply.status, 200);
      assert.ok(again.served, `served from the cache again (fallbacks ${JSON.stringify(again.fallbacks)})`);
      const w = await viaProxy('configmaps', `${cmPath}?watch=1&resourceVersion=0&timeoutSeconds=1`);
      assert.equal(w.reply.status, 200);
      assert.ok(w.served, `a watch served from the cache again (fallbacks ${JSON.stringify(w.fallbacks)})`);
      t.diagnostic(`recovered within ${Date.now() - back} ms`);
      passed++;
    });

    await t.test('(d) the CRD created later gets cached', async () => {
      const crd = {
        apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: crdResource },
        spec: {
          group, scope: 'Namespaced', names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget', listKind: 'GadgetList' },
          versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
        },
      };
      const r = await call(cluster, direct(0), '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: JSON.stringify(crd) });
      assert.equal(r.status, 201, r.text());
      const path = `/apis/${group}/v1/namespaces/${ns}/gadgets`;
      await until('the CRD to be served', async () => (await call(cluster, direct(0), path)).status === 200, 30_000);
      const created = await call(cluster, direct(0), path, { method: 'POST', body: JSON.stringify({ apiVersion: `${group}/v1`, kind: 'Gadget', metadata: { name: 'g1', namespace: ns } }) });
      assert.equal(created.status, 201, created.text());
      // Discovery is retried every 30 s at the most.
      const cachedIn = await until('the new CRD to be served from the cache', async () => (await viaProxy(crdResource, `${path}?resourceVersion=0`)).served, 90_000);
      t.diagnostic(`cached ${cachedIn} ms after it was created`);
      assert.equal(total(await metrics(), 'kube_cache_proxy_cache_not_cached', (l) => l['resource'] === crdResource), 0);
      assert.equal((await readyz()).status, 200);
      passed++;
    });

    await t.test('(d) the CRD deleted: its cache is dropped, its reads forwarded, the proxy stays ready', async () => {
      const r = await call(cluster, direct(0), `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crdResource}`, { method: 'DELETE' });
      assert.equal(r.status, 200, r.text());
      let unready = 0;
      const droppedIn = await until('the cache of the deleted CRD to be dropped', async () => {
        if ((await readyz()).status !== 200) unready++;
        return total(await metrics(), 'kube_cache_proxy_cache_not_cached', (l) => l['resource'] === crdResource) === 1;
      }, 60_000);
      t.diagnostic(`dropped ${droppedIn} ms after the CRD was deleted`);
      assert.equal(unready, 0, 'the proxy was unready on the way');
      const verbose = await readyz(true);
      assert.equal(verbose.status, 200, verbose.body);
      assert.match(verbose.body, new RegExp(`^\\[\\+\\]cache:${crdResource.replace(/\./g, '\\.')} ok \\(not cached, reads forwarded: .+\\)$`, 'm'));
      const path = `/apis/${group}/v1/namespaces/${ns}/gadgets?resourceVersion=0`;
      const forwarded = await viaProxy(crdResource, path);
      assert.equal(forwarded.served, false);
      assert.equal(forwarded.reply.status, (await call(cluster, direct(0), path)).status);
      passed++;
    });
    ok = passed === 6;
  } finally {
    await proxy?.stop();
    for (const r of relays) await r.close();
    await closeAgents();
    await cluster.down();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`cluster logs kept in ${dir}/logs`);
  }
});
