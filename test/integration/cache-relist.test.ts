// The cache across apiserver restarts, a full outage and etcd compaction, under load: writers keep
// writing straight at the apiservers that are up and read their writes back through the proxy,
// readers LIST in a loop with resourceVersion unset and =0. No answer may be stale or partial (the
// Ledger judges each against the writes' history), errors while apiservers are down must be clean
// Status bodies within the freshness budget plus a margin, and afterwards the proxy and the
// apiserver must list exactly the same items, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../cluster/cluster.js';
import { startTestProxy, type TestProxy } from '../helpers/env.js';
import { terminateApiserver } from '../helpers/terminate-apiserver.js';
import { call, type Reply } from '../helpers/http.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { topLevelMember } from '../../cache/json-scan.js';
import { parseResourceVersion } from '../../cache/resource-version.js';
import { Ledger, now, type Scope } from '../helpers/ledger.js';
import { cacheReport, growthBy, newStats, observe, quantile, runWriter, scrape, seed, total, type ReadStats, type Sample } from '../helpers/cache-workload.js';

const WRITERS = 4;
const READERS = 3;
/** The freshness budget (3 s) plus a margin for a probe and a forward to apiservers busy starting (2 cores). */
const MAX_READ_MS = 8_000;
const RESOURCES: ReadonlyArray<[string, string]> = [
  ['pods', '/api/v1/pods'], ['nodes', '/api/v1/nodes'], ['namespaces', '/api/v1/namespaces'], ['services', '/api/v1/services'],
  ['endpointslices.discovery.k8s.io', '/apis/discovery.k8s.io/v1/endpointslices'], ['configmaps', '/api/v1/configmaps'],
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;

async function ready(proxy: TestProxy, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`${proxy.metricsUrl}/readyz`)).status === 200) return;
    await sleep(100);
  }
  throw new Error(`proxy not ready in ${timeoutMs} ms`);
}

/** A consistent LIST through the proxy, when the cache answered it (else undefined). */
async function fromCache(cluster: TestCluster, p: TestProxy, resource: string, path: string): Promise<Reply | undefined> {
  return (await throughCache(cluster, p, resource, path)).reply;
}

/**
 * A LIST through the proxy: the reply when the cache answered it, and the reasons the proxy gave for
 * forwarding reads of the resource meanwhile (only this test's own reads of a resource the readers
 * do not read are attributable).
 */
async function throughCache(cluster: TestCluster, p: TestProxy, resource: string, path: string): Promise<{ reply: Reply | undefined; forwarded: string[] }> {
  const mine = (l: Readonly<Record<string, string>>) => l['resource'] === resource;
  const before = await scrape(p.metricsUrl);
  const reply = await call(cluster, p.url, path);
  const after = await scrape(p.metricsUrl);
  const served = total(after, 'kube_cache_proxy_cache_served_total', mine) > total(before, 'kube_cache_proxy_cache_served_total', mine);
  const forwarded = Object.keys(growthBy(before.filter((s) => mine(s.labels)), after.filter((s) => mine(s.labels)), 'kube_cache_proxy_cache_fallbacks_total', 'reason'));
  return { reply: reply.status === 200 && served ? reply : undefined, forwarded };
}

/** metadata.resourceVersion of a LIST answer. */
function listRV(body: Buffer): bigint | undefined {
  const meta: unknown = JSON.parse(topLevelMember(body, 'metadata')?.toString('utf8') ?? 'null');
  return typeof meta === 'object' && meta !== null && 'resourceVersion' in meta ? parseResourceVersion(meta.resourceVersion) : undefined;
}

const relists = (m: readonly Sample[], reason: string, resource?: string) =>
  total(m, 'kube_cache_proxy_cache_relists_total', (l) => l['reason'] === reason && (resource === undefined || l['resource'] === resource));

test('the cache through apiserver restarts, a full outage and compaction: never stale, partial or hanging', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-relist-'));
  const cluster = await TestCluster.up({ dir, apiservers: 3 });
  const urls = cluster.info.apiservers.map((a) => a.url);
  const up = new Set(urls);
  let ok = false;
  let proxy: TestProxy | undefined;
  try {
    const run = randomBytes(3).toString('hex');
    const namespaces = [`relist-${run}-a`, `relist-${run}-b`];
    const nodes = [0, 1, 2].map((i) => `relist-${run}-node-${i}`);
    const all = new Set(namespaces);
    const ledger = new Ledger();
    await seed(cluster, urls[0] ?? '', ledger, namespaces, nodes, 10);
    const seeded = ledger.completedBefore(now() + 1);
    // A small page size: every relist is a paginated LIST with continue tokens.
    proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({ pageSize: 7 }), upstreams: urls });
    const p = proxy;
    await ready(p, 60_000);

    const stats: ReadStats = newStats();
    const policy = { allowErrors: true, maxMs: MAX_READ_MS };
    let stopping = false;
    const writers = Array.from({ length: WRITERS }, (_, i) => runWriter({
      cluster, proxyUrl: p.url, id: `${run}-w${i}`, namespaces, nodes, ledger, stats, policy,
      target: () => (up.size === 0 ? undefined : pick([...up])),
      tolerateWriteErrors: true,
      done: () => stopping,
    }));
    const reads: Array<[string, Scope]> = [
      ...namespaces.flatMap((ns): Array<[string, Scope]> => [
        [`/api/v1/namespaces/${ns}/configmaps`, { kind: 'configmaps', namespace: ns }],
        [`/api/v1/namespaces/${ns}/pods`, { kind: 'pods', namespace: ns }],
      ]),
      ...nodes.map((n): [string, Scope] => [`/api/v1/pods?fieldSelector=spec.nodeName%3D${n}`, { kind: 'pods', node: n }]),
      ['/api/v1/configmaps?labelSelector=seed%3Dtrue', { kind: 'configmaps', labels: { seed: 'true' } }],
    ];
    const readers = Array.from({ length: READERS }, async () => {
      while (!stopping) {
        const [path, scope] = pick(reads);
        // resourceVersion=0, or consistent: whole, or in pages of 4 (the cache's snapshots and tokens).
        const mode = Math.random();
        const anyRV = mode < 0.4;
        const limit = mode > 0.75 ? 4 : 0;
        const ok = await observe(cluster, p.url, anyRV ? `${path}${path.includes('?') ? '&' : '?'}resourceVersion=0` : path, scope, all, policy, stats, limit);
        // A fast 503 while apiservers are down: no busy loop starving the apiservers of CPU.
        if (!ok) await sleep(20);
      }
    });
    const phases: string[] = [];
    const phase = async (name: string, f: () => Promise<void>) => {
      const started = now();
      const before = stats.ok;
      await f();
      phases.push(`${name}: ${((now() - started) / 1000).toFixed(1)} s, ${stats.ok - before} LISTs ok`);
    };
    // Writers keep writing to an apiserver until it is gone: writes caught by its shutdown fail or
    // have an unknown outcome, and the ledger stops judging those objects.
    const stop = async (i: number) => {
      await terminateApiserver(cluster, i);
      up.delete(urls[i] ?? '');
    };
    const start = async (i: number) => {
      await cluster.startApiserver(i);
      up.add(urls[i] ?? '');
    };
    const m0 = await scrape(p.metricsUrl);
    const recoveries: string[] = [];
    let expiredInC = 0;
    try {
      await phase('warm-up', () => sleep(2_000));
      await phase('(a) restart apiserver-1', async () => {
        await stop(1);
        await start(1);
        await sleep(3_000);
      });
      // Recovered: every resource's cache has caught up with the cluster after the apiservers came
      // back and answers reads that need it. A busy resource shows it with a consistent LIST answered
      // from the cache (its cache proved fresh within the budget). A quiet one cannot while the
      // writers move the cluster's revision: its consistent LISTs are forwarded at once, by design
      // (reason 'quiet', cache/quiet-resources.ts), since only a bookmark, up to a second away, would
      // bring its store to R. For it, recovery is a LIST not older than R0 answered from the cache:
      // R0, the cluster's revision once every apiserver was back, is past every revision its cache
      // held before the stop, so its store must have caught up through watches made after the
      // restart. Any other reason to forward a consistent LIST is not recovered. Which watches got
      // 410 Expired on the way is reported.
      const recovered = async (since: readonly Sample[], what: string) => {
        const started = now();
        const r0 = listRV((await call(cluster, urls[0] ?? '', '/api/v1/namespaces?limit=1')).body);
        assert.ok(r0 !== undefined, `${what}: no resourceVersion from the apiserver`);
        for (const [name] of RESOURCES) {
          const held = total(since, 'kube_cache_proxy_cache_resource_version', (l) => l['resource'] === name);
          assert.ok(r0 > BigInt(Math.floor(held)), `${what}: the cluster's revision ${r0} is not past ${name}'s cache before the stop (${held})`);
        }
        const missing = new Map(RESOURCES.map(([name]): [string, string] => [name, 'not tried']));
        const how = new Map<string, string>();
        while (missing.size > 0) {
          if (now() - started > 30_000) throw new Error(`${what}: not recovered within 30 s: ${[...missing].map(([n, why]) => `${n} (${why})`).join(', ')}`);
          await Promise.all(RESOURCES.filter(([name]) => missing.has(name)).map(async ([name, path]) => {
            const consistent = await throughCache(cluster, p, name, path);
            if (consistent.reply) {
              how.set(name, 'consistent');
              missing.delete(name);
              return;
            }
            if (!consistent.forwarded.includes('quiet')) {
              missing.set(name, `consistent LIST forwarded: ${consistent.forwarded.join(' ') || 'not served'}`);
              return;
            }
            const quiet = await throughCache(cluster, p, name, `${path}?resourceVersion=${r0}&resourceVersionMatch=NotOlderThan`);
            const rv = quiet.reply ? listRV(quiet.reply.body) : undefined;
            if (quiet.reply) assert.ok(rv !== undefined && rv >= r0, `${what}: ${name} served from the cache at ${rv} for a LIST not older than ${r0}`);
            if (quiet.reply) {
              how.set(name, 'quiet');
              missing.delete(name);
            } else missing.set(name, `quiet, its store not at ${r0} (forwarded: ${quiet.forwarded.join(' ') || 'not served'})`);
          }));
          if (missing.size > 0) await sleep(200);
        }
        const m = await scrape(p.metricsUrl);
        const expired = RESOURCES.map(([name]) => `${name}=${relists(m, 'expired', name) - relists(since, 'expired', name)}`);
        const ways = RESOURCES.map(([name]) => `${name}=${how.get(name) ?? ''}`);
        recoveries.push(`${what}: every resource served from the cache ${((now() - started) / 1000).toFixed(1)} s after the apiservers were back (${ways.join(' ')}); relists on 410 Expired: ${expired.join(' ')}`);
        return relists(m, 'expired') - relists(since, 'expired');
      };
      await phase('(b) all apiservers down for 5 s', async () => {
        const before = await scrape(p.metricsUrl);
        await Promise.all([0, 1, 2].map(stop));
        await sleep(5_000);
        await Promise.all([0, 1, 2].map(start));
        // A watch from an old RV gets 410 from a new watch cache, but not when it reaches an
        // apiserver whose watch cache is still starting: that one serves it from etcd.
        await recovered(before, '(b)');
        await sleep(2_000);
      });
      await phase('(c) compact etcd, restart every apiserver', async () => {
        const before = await scrape(p.metricsUrl);
        const rev = await cluster.compactEtcd();
        t.diagnostic(`compacted etcd at revision ${rev}`);
        await Promise.all([0, 1, 2].map(stop));
        await Promise.all([0, 1, 2].map(start));
        // A watch from before the compaction is expired now, whether a new watch cache or etcd
        // serves it (a busy resource may have moved past the compacted revision before the stop).
        expiredInC = await recovered(before, '(c)');
        await sleep(2_000);
      });
    } finally {
      stopping = true;
      await Promise.all([...writers, ...readers]);
    }
    const m1 = await scrape(p.metricsUrl);
    const writes = (await Promise.all(writers)).reduce((n, r) => n + r.writes, 0);
    const failedWrites = (await Promise.all(writers)).reduce((n, r) => n + r.failedWrites, 0);

    // Afterwards: once each resource's cache has caught up (its consistent LIST is served from the
    // cache), the proxy and an apiserver list exactly the same items, byte for byte.
    const mismatches: string[] = [];
    const recovery: string[] = [];
    for (const [name, path] of RESOURCES) {
      const since = now();
      for (;;) {
        const viaProxy = await fromCache(cluster, p, name, path);
        const direct = await call(cluster, urls[0] ?? '', path);
        assert.equal(direct.status, 200);
        if (!viaProxy && now() - since < 20_000) continue;
        assert.ok(viaProxy, `${name}: the cache did not serve a consistent LIST within 20 s after the load stopped`);
        recovery.push(`${name}=${Math.round(now() - since)}ms`);
        const a = topLevelMember(viaProxy.body, 'items');
        const b = topLevelMember(direct.body, 'items');
        if (!a || !b || !a.equals(b)) mismatches.push(`${name}: proxy ${a?.length ?? 0} bytes, apiserver ${b?.length ?? 0} bytes`);
        break;
      }
    }
    t.diagnostic(`final LISTs served from the cache after: ${recovery.join(' ')}`);

    const verdict = ledger.judge(stats.observations);
    const tooOld = stats.observations.filter((o) => o.listRV < seeded).map((o) => `${o.path}: list at RV ${o.listRV} older than the seed objects (RV ${seeded})`);
    const c = cacheReport(m0, m1, RESOURCES.map(([name]) => name));
    for (const line of phases) t.diagnostic(line);
    for (const line of recoveries) t.diagnostic(line);
    t.diagnostic(`${writes} writes (${failedWrites} failed: apiserver going down), ${stats.ok} LISTs checked, errors by code ${JSON.stringify(Object.fromEntries(stats.errors))}; ` +
      `read ms p50=${quantile(stats.durationsMs, 0.5).toFixed(1)} p99=${quantile(stats.durationsMs, 0.99).toFixed(0)} max=${Math.max(...stats.durationsMs).toFixed(0)}`);
    t.diagnostic(`cache: served=${c.served} forwarded=${JSON.stringify(Object.fromEntries(c.fallbacks))} hit ratio=${c.hitRatio.toFixed(3)}; freshness waits: ${c.waits}`);
    t.diagnostic(`relists ${JSON.stringify(growthBy([], m1, 'kube_cache_proxy_cache_relists_total', 'reason'))}; ` +
      `watch restarts ${JSON.stringify(growthBy([], m1, 'kube_cache_proxy_cache_watch_restarts_total', 'reason'))}`);
    t.diagnostic(`violations: ${stats.violations.length} on arrival, ${verdict.length} by the ledger, ${tooOld.length} older than the seeds, ${mismatches.length} proxy/apiserver mismatches`);
    assert.deepEqual([...stats.violations.slice(0, 10), ...verdict.slice(0, 10), ...tooOld.slice(0, 5), ...mismatches], []);
    assert.ok(expiredInC > 0, 'no watch was answered 410 Expired after the compaction');
    assert.ok(stats.ok > 1000 && writes > 300, 'the load kept going');
    ok = true;
  } finally {
    await proxy?.stop();
    await cluster.down();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`cluster logs kept in ${dir}/logs`);
  }
});
