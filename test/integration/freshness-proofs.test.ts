// Shared freshness proofs and quiet resources against the real apiserver, the proxy's cache on.
//
// 1. The lag from a write's acknowledgement to the proxy's reflector applying its event (what a busy
//    resource's read must be allowed to wait: docs/design.md, --cache-freshness-budget), measured and
//    reported.
// 2. The pods resource's FreshnessProofs (cache/freshness-proof.ts) driven by 8 concurrent readers
//    while a writer patches a pod: every proof is at least the resourceVersion of every write
//    acknowledged before the read asked, the store then holds that write (read-your-writes), at most
//    one probe is ever in flight, and probes are shared (fewer than reads).
// 3. A quiet resource (nodes, nobody writes them here) read consistently through the proxy while
//    pods are written: forwarded at once as 'quiet', not waited for (no rv_wait_timeout, no ~1 s).
// 4. A busy resource (pods, written continuously) read consistently through the proxy: served from
//    the cache (the budget covers its events' lag).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { proxyReady, sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents } from '../helpers/http.js';
import { growthBy, quantile, scrape, total } from '../helpers/cache-workload.js';
import type { CachedResource } from '../../cache/resource-cache.js';
import type { TestCluster } from '../cluster/cluster.js';

const run = randomBytes(3).toString('hex');
const NS = `fresh-${run}`;
const PODS = 4;
let cluster: TestCluster;
let proxy: TestProxy;
let direct: string;

function podBody(name: string): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { k: '0' } }, spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] } });
}

function rvOf(body: unknown): bigint {
  const meta = typeof body === 'object' && body !== null && 'metadata' in body ? body.metadata : undefined;
  const rv = typeof meta === 'object' && meta !== null && 'resourceVersion' in meta ? meta.resourceVersion : undefined;
  if (typeof rv !== 'string') throw new Error('no resourceVersion');
  return BigInt(rv);
}

/** Patches pod i's label k to `value`; returns the write's resourceVersion. */
async function patch(i: number, value: number): Promise<bigint> {
  const r = await call(cluster, direct, `/api/v1/namespaces/${NS}/pods/p${i}`, {
    method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ metadata: { labels: { k: String(value) } } }),
  });
  assert.equal(r.status, 200, r.text());
  return rvOf(r.json());
}

function pods(): CachedResource {
  const cr = proxy.proxy.cache?.lookup('', 'v1', 'pods');
  assert.ok(cr, 'pods are cached');
  return cr;
}

before(async () => {
  cluster = sharedCluster();
  direct = cluster.info.apiservers[0]?.url ?? '';
  const ns = await call(cluster, direct, '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }) });
  assert.equal(ns.status, 201, ns.text());
  for (let i = 0; i < PODS; i++) {
    const r = await call(cluster, direct, `/api/v1/namespaces/${NS}/pods`, { method: 'POST', body: podBody(`p${i}`) });
    assert.equal(r.status, 201, r.text());
  }
  proxy = await startTestProxy(cluster);
  await proxyReady(proxy);
});

after(async () => {
  await proxy?.stop();
  await call(cluster, direct, `/api/v1/namespaces/${NS}`, { method: 'DELETE' }).catch(() => undefined);
  await closeAgents();
});

test('the lag from a write\'s acknowledgement to the reflector applying its event', async (t) => {
  const cr = pods();
  const seen = new Map<bigint, number>();
  const off = cr.reflector.onEvent((e) => seen.set(e.resourceVersion, performance.now()));
  const acked: { rv: bigint; at: number; sent: number }[] = [];
  try {
    for (let k = 1; k <= 200; k++) {
      const sent = performance.now();
      const rv = await patch(k % PODS, k);
      acked.push({ rv, at: performance.now(), sent });
      await new Promise((res) => setTimeout(res, 10));
    }
    const last = acked.at(-1)?.rv ?? 0n;
    assert.ok(await cr.reflector.waitFor(last, 10_000), 'the reflector reached the last write');
  } finally {
    off();
  }
  const missing = acked.filter((a) => !seen.has(a.rv));
  assert.deepEqual(missing.map((a) => a.rv), [], 'every write reached the reflector as an event');
  const afterAck = acked.map((a) => Math.max(0, (seen.get(a.rv) ?? 0) - a.at));
  const afterSend = acked.map((a) => (seen.get(a.rv) ?? 0) - a.sent);
  const early = acked.filter((a) => (seen.get(a.rv) ?? 0) < a.at).length;
  t.diagnostic(`event lag after the write's acknowledgement, ms: p50=${quantile(afterAck, 0.5).toFixed(2)} p90=${quantile(afterAck, 0.9).toFixed(2)} p99=${quantile(afterAck, 0.99).toFixed(2)} max=${Math.max(...afterAck).toFixed(2)} (${early}/${acked.length} before the acknowledgement)`);
  t.diagnostic(`event lag after the write was sent, ms: p50=${quantile(afterSend, 0.5).toFixed(2)} p99=${quantile(afterSend, 0.99).toFixed(2)}`);
});

test('8 concurrent readers share freshness proofs: sound against the real apiserver, one probe at a time, fewer probes than reads', async (t) => {
  const cr = pods();
  const s0 = cr.freshness.stats;
  /** The last write acknowledged: its label value and resourceVersion. */
  let ackedK = 0;
  let ackedRV = 0n;
  let writing = true;
  const writer = (async () => {
    for (let k = 1; writing; k++) {
      const rv = await patch(0, 1000 + k);
      ackedK = 1000 + k;
      ackedRV = rv;
    }
  })();
  const violations: string[] = [];
  let reads = 0;
  let notCaughtUp = 0;
  const deadline = performance.now() + 4000;
  const reader = async () => {
    while (performance.now() < deadline) {
      const k0 = ackedK;
      const rv0 = ackedRV;
      const R = await cr.freshness.target();
      reads++;
      if (R < rv0) violations.push(`proof ${R} older than the write ${rv0} acknowledged before the read`);
      // The store at R holds every write acknowledged before the read asked.
      if (!(await cr.reflector.waitFor(R, 5000))) {
        notCaughtUp++;
        continue;
      }
      const o = cr.reflector.store?.get(`${NS}/p0`);
      const k = Number(o?.labels['k'] ?? -1);
      if (k0 > 0 && k < k0) violations.push(`store at ${cr.reflector.resourceVersion} has k=${k}, the write k=${k0} was acknowledged before the read`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, () => reader()));
  writing = false;
  await writer;
  const s1 = cr.freshness.stats;
  const probes = s1.probes - s0.probes;
  const proofReads = s1.reads - s0.reads;
  t.diagnostic(`${proofReads} reads, ${probes} probes (${(probes / proofReads).toFixed(3)} per read), ${s1.failures - s0.failures} failed; store not caught up within 5 s: ${notCaughtUp}`);
  assert.deepEqual(violations.slice(0, 10), []);
  assert.equal(proofReads, reads);
  assert.equal(s1.maxInFlight, 1, 'at most one probe in flight');
  assert.equal(s1.failures - s0.failures, 0);
  // Each probe after the first of a batch run is shared by the readers that arrived during the one
  // before; with 8 readers looping, a probe serves several. Not a benchmark: only that they are shared.
  assert.ok(probes < reads, `${probes} probes for ${reads} reads: not shared`);
  assert.ok(probes * 2 <= reads + 8, `${probes} probes for ${reads} reads at concurrency 8`);
  assert.equal(notCaughtUp, 0);
});

/** Consistent LISTs of `path` through the proxy while `writes` keeps pods changing; latencies in ms. */
async function readWhileWriting(path: string, seconds: number): Promise<number[]> {
  let writing = true;
  const writer = (async () => {
    for (let k = 1; writing; k++) {
      await patch(k % PODS, 2000 + k);
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  const ms: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  try {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const r = await call(cluster, proxy.url, path);
      ms.push(performance.now() - t0);
      assert.equal(r.status, 200, r.text());
    }
  } finally {
    writing = false;
    await writer;
  }
  return ms;
}

test('a quiet resource read consistently while pods are written: forwarded at once as quiet, not waited for', async (t) => {
  const nodes = proxy.proxy.cache?.lookup('', 'v1', 'nodes');
  assert.ok(nodes);
  const idle = nodes.activity.idleMs();
  // A node written by another test within the quiet threshold would make the prediction wait.
  const quietAfter = proxy.proxy.cache?.config.readFreshness.quietAfterMs ?? 0;
  if (idle < quietAfter) await new Promise((res) => setTimeout(res, quietAfter - idle));
  const m0 = await scrape(proxy.metricsUrl);
  const ms = await readWhileWriting('/api/v1/nodes', 3);
  const m1 = await scrape(proxy.metricsUrl);
  const isNodes = (l: Readonly<Record<string, string>>) => l['resource'] === 'nodes' && l['verb'] === 'list';
  const reasons = growthBy(m0.filter((s) => isNodes(s.labels)), m1.filter((s) => isNodes(s.labels)), 'kube_cache_proxy_cache_fallbacks_total', 'reason');
  const served = total(m1, 'kube_cache_proxy_cache_served_total', isNodes) - total(m0, 'kube_cache_proxy_cache_served_total', isNodes);
  t.diagnostic(`${ms.length} LISTs of nodes: served ${served}, forwarded ${JSON.stringify(reasons)}; ms p50=${quantile(ms, 0.5).toFixed(1)} p99=${quantile(ms, 0.99).toFixed(1)} max=${Math.max(...ms).toFixed(1)}`);
  assert.equal(reasons['rv_wait_timeout'] ?? 0, 0, 'a quiet resource is not waited for');
  assert.ok((reasons['quiet'] ?? 0) > 0, 'some reads found nodes behind and were forwarded as quiet');
  assert.equal(served + (reasons['quiet'] ?? 0), ms.length, 'every read served (caught up by a bookmark) or forwarded as quiet');
  // Waiting for a bookmark took ~1 s per read before; a forwarded LIST of a few nodes takes milliseconds.
  assert.ok(quantile(ms, 0.5) < 300, `p50 ${quantile(ms, 0.5).toFixed(1)} ms: the reads waited`);
});

test('a busy resource read consistently while it is written: served from the cache', async (t) => {
  const m0 = await scrape(proxy.metricsUrl);
  const ms = await readWhileWriting(`/api/v1/namespaces/${NS}/pods`, 3);
  const m1 = await scrape(proxy.metricsUrl);
  const isPods = (l: Readonly<Record<string, string>>) => l['resource'] === 'pods' && l['verb'] === 'list';
  const reasons = growthBy(m0.filter((s) => isPods(s.labels)), m1.filter((s) => isPods(s.labels)), 'kube_cache_proxy_cache_fallbacks_total', 'reason');
  const served = total(m1, 'kube_cache_proxy_cache_served_total', isPods) - total(m0, 'kube_cache_proxy_cache_served_total', isPods);
  const forwarded = Object.values(reasons).reduce((a, b) => a + b, 0);
  t.diagnostic(`${ms.length} LISTs of pods: served ${served}, forwarded ${JSON.stringify(reasons)}; ms p50=${quantile(ms, 0.5).toFixed(1)} p99=${quantile(ms, 0.99).toFixed(1)}`);
  assert.equal(served + forwarded, ms.length);
  // Other tests may write other resources meanwhile (R moves past the pods' events): loose bound.
  assert.ok(served >= 0.8 * ms.length, `only ${served} of ${ms.length} served from the cache`);
});
