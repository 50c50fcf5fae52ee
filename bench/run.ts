// The kube-cache-proxy benchmark (a script, not a test): starts its own cluster (etcd + one
// kube-apiserver) and the proxy as a separate process, populates the cluster directly, then measures
// the same reads direct to the apiserver and through the proxy: latency, throughput, the apiserver's
// (and the proxy's) CPU per 1,000 requests, the proxy's memory per cached byte, and the cache hit
// ratio of consistent reads under writes. See bench/README.md.
import { optionsOrExit } from './argv.js';
import { populate } from './population.js';
import { commandLine, sourceInfo, updateReadme } from './report.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../test/cluster/cluster.js';
import { repoRoot } from '../test/cluster/paths.js';
import { parseArgs, scaleLabel, USAGE, type BenchOptions } from './args.js';
import { Client, closedLoop, type LoadResult } from './client.js';
import { APP_COUNT, appName, configMapObject, namespaceName, nodeName, podRef, type Layout } from './objects.js';
import { cpuDelta, sampleCpu, type CpuSample } from './proc.js';
import { deltaOf, histogramDelta, histogramQuantile, parseMetrics, sum, sumBy, type Metrics } from './prom.js';
import { ProxyProcess, stopAllProxies } from './proxy-process.js';
import { evaluateTargets, markdown, QUIET_DIRECT, QUIET_READER, type BenchResult, type CaseResult, type MemoryResult, type MixedResource, type MixedResult, type SideResult } from './results.js';
import { latencyStats, prng, round, sleep } from './stats.js';

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Env {
  readonly o: BenchOptions;
  readonly layout: Layout;
  readonly cluster: TestCluster;
  readonly direct: Client;
  readonly viaProxy: Client;
  readonly proxy: ProxyProcess;
  readonly pids: Readonly<Record<string, number>>;
}

// ---------------------------------------------------------------- population

// ---------------------------------------------------------------- cases

interface CaseSpec {
  readonly id: string;
  readonly title: string;
  readonly kind: CaseResult['kind'];
  readonly resourceVersion: 'unset' | '0';
  readonly indexed: boolean;
  readonly requests: number;
  readonly concurrency: number;
  readonly verb: 'list' | 'get';
  /** The path of request i (the same sequence for direct and proxy). */
  readonly path: (i: number) => string;
}

function caseSpecs(o: BenchOptions, layout: Layout): CaseSpec[] {
  const rand = prng(o.seed);
  const seq = (n: number, max: number) => Array.from({ length: n }, () => Math.floor(rand() * max));
  const at = (a: readonly number[], i: number) => a[i % a.length] ?? 0;
  const out: CaseSpec[] = [];
  for (const rv of ['unset', '0'] as const) {
    const q = (params: string) => {
      const all = [params, rv === '0' ? 'resourceVersion=0' : ''].filter((s) => s !== '').join('&');
      return all ? `?${all}` : '';
    };
    const nodes = seq(o.requests + 64, o.nodes);
    const nss = seq(o.requests + 64, o.namespaces);
    const apps = seq(o.requests + 64, APP_COUNT);
    const base = { resourceVersion: rv, requests: o.requests, concurrency: o.concurrency, verb: 'list' as const };
    out.push({ ...base, id: `node-${rv}`, title: 'pods on one node (fieldSelector spec.nodeName, all namespaces)', kind: 'nodeName', indexed: true,
      path: (i) => `/api/v1/pods${q(`fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName(at(nodes, i))}`)}`)}` });
    out.push({ ...base, id: `namespace-${rv}`, title: 'pods in one namespace', kind: 'namespace', indexed: true,
      path: (i) => `/api/v1/namespaces/${namespaceName(at(nss, i))}/pods${q('')}` });
    out.push({ ...base, id: `label-${rv}`, title: 'pods by label app=<x> (~1%, all namespaces)', kind: 'label', indexed: true,
      path: (i) => `/api/v1/pods${q(`labelSelector=${encodeURIComponent(`app=${appName(at(apps, i))}`)}`)}` });
    out.push({ ...base, id: `full-${rv}`, title: 'all pods (full LIST)', kind: 'full', indexed: false, requests: o.fullRequests, concurrency: o.fullConcurrency,
      path: () => `/api/v1/pods${q('')}` });
  }
  const pods = seq(o.requests + 64, o.pods);
  for (const rv of ['0', 'unset'] as const) {
    out.push({
      id: `get-${rv}`, title: rv === '0' ? 'GET one pod' : 'GET one pod (consistent: always forwarded)', kind: 'get', indexed: false, resourceVersion: rv,
      requests: o.requests, concurrency: o.concurrency, verb: 'get',
      path: (i) => {
        const ref = podRef(at(pods, i), layout);
        return `/api/v1/namespaces/${ref.namespace}/pods/${ref.name}${rv === '0' ? '?resourceVersion=0' : ''}`;
      },
    });
  }
  return out;
}

/** One decoded answer: the item count of a list, or the name of an object. */
async function describe(client: Client, path: string): Promise<string> {
  const r = await client.get(path, true);
  if (r.status !== 200) return `HTTP ${r.status}`;
  const v: unknown = JSON.parse(r.body?.toString('utf8') ?? 'null');
  if (typeof v !== 'object' || v === null) return 'not an object';
  if ('items' in v && Array.isArray(v.items)) return `${v.items.length}`;
  if ('metadata' in v && typeof v.metadata === 'object' && v.metadata !== null && 'name' in v.metadata) return 'object';
  return 'unknown';
}

interface Round {
  readonly requests: number;
  readonly load: LoadResult;
  readonly cpu: Record<string, number>;
  readonly served: number;
  readonly fallbacks: Record<string, number>;
  readonly freshness: Freshness;
}

interface Freshness {
  reads: number;
  waited: number;
  over100ms: number;
  timeouts: number;
  waitSeconds: number;
}

function freshnessDelta(m0: Metrics | undefined, m1: Metrics | undefined, resource: string): Freshness {
  if (!m0 || !m1) return { reads: 0, waited: 0, over100ms: 0, timeouts: 0, waitSeconds: 0 };
  const name = 'kube_cache_proxy_freshness_wait_seconds';
  const h = histogramDelta(m0, m1, name, { resource });
  return {
    reads: h.count,
    waited: h.count - (h.buckets[0]?.count ?? 0),
    over100ms: h.count - (h.buckets.find((b) => b.le === 0.1)?.count ?? h.count),
    timeouts: histogramDelta(m0, m1, name, { resource, outcome: 'timeout' }).count,
    waitSeconds: h.sumSeconds,
  };
}

async function measureRound(env: Env, c: CaseSpec, side: 'direct' | 'proxy', from: number, to: number): Promise<Round> {
  const client = side === 'direct' ? env.direct : env.viaProxy;
  const want = { resource: 'pods', verb: c.verb };
  const m0 = side === 'proxy' ? await env.proxy.metrics() : undefined;
  const c0 = sampleCpu(env.pids);
  const load = await closedLoop(client, to - from, c.concurrency, (i) => c.path(from + i));
  const c1 = sampleCpu(env.pids);
  const m1 = side === 'proxy' ? await env.proxy.metrics() : undefined;
  return {
    requests: to - from,
    load,
    cpu: cpuDelta(c0, c1),
    served: m0 && m1 ? sum(m1, 'kube_cache_proxy_cache_served_total', want) - sum(m0, 'kube_cache_proxy_cache_served_total', want) : 0,
    fallbacks: m0 && m1 ? deltaOf(sumBy(m0, 'kube_cache_proxy_cache_fallbacks_total', 'reason', want), sumBy(m1, 'kube_cache_proxy_cache_fallbacks_total', 'reason', want)) : {},
    freshness: freshnessDelta(m0, m1, 'pods'),
  };
}

function combine(rounds: readonly Round[], side: 'direct' | 'proxy'): SideResult {
  const latencies = rounds.flatMap((r) => r.load.latenciesMs);
  const wall = rounds.reduce((n, r) => n + r.load.wallSeconds, 0);
  const requests = rounds.reduce((n, r) => n + r.requests, 0);
  const cpu: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.cpu)) cpu[k] = (cpu[k] ?? 0) + v;
  const per1000: Record<string, number> = {};
  for (const [k, v] of Object.entries(cpu)) per1000[k] = round((v / Math.max(1, requests)) * 1000, 4);
  const statuses: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.load.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const fallbacks: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.fallbacks)) fallbacks[k] = (fallbacks[k] ?? 0) + v;
  const firstError = rounds.find((r) => r.load.firstError)?.load.firstError;
  const bytes = rounds.reduce((n, r) => n + r.load.bytes, 0);
  const freshness: Freshness = { reads: 0, waited: 0, over100ms: 0, timeouts: 0, waitSeconds: 0 };
  for (const r of rounds) for (const k of Object.keys(freshness) as (keyof Freshness)[]) freshness[k] += r.freshness[k];
  freshness.waitSeconds = round(freshness.waitSeconds, 4);
  return {
    requests,
    errors: rounds.reduce((n, r) => n + r.load.errors, 0),
    statuses,
    ...(firstError ? { firstError } : {}),
    latency: latencyStats(latencies),
    wallSeconds: round(wall, 3),
    requestsPerSecond: round(latencies.length / wall, 1),
    meanWireBytes: Math.round(bytes / Math.max(1, latencies.length)),
    gzipped: rounds.reduce((n, r) => n + r.load.gzipped, 0),
    cpuSeconds: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 3)])),
    cpuSecondsPer1000: per1000,
    ...(side === 'proxy' ? { cacheServed: rounds.reduce((n, r) => n + r.served, 0), cacheFallbacks: fallbacks, freshness } : {}),
  };
}

async function runCase(env: Env, c: CaseSpec): Promise<CaseResult> {
  log(`case ${c.id}: ${c.title}, RV ${c.resourceVersion}, ${c.requests} requests per side at concurrency ${c.concurrency}`);
  const d = await describe(env.direct, c.path(0));
  const p = await describe(env.viaProxy, c.path(0));
  // Warm-up (not measured): connections, JIT, the apiserver's and the proxy's caches.
  const warm = Math.min(c.requests, Math.max(2, c.concurrency * 2));
  for (const client of [env.direct, env.viaProxy]) await closedLoop(client, warm, c.concurrency, (i) => c.path(c.requests + i));
  // ABBA: direct, proxy, proxy, direct, so drift over time weighs on both alike.
  const half = Math.floor(c.requests / 2);
  const rounds: { side: 'direct' | 'proxy'; from: number; to: number }[] = [
    { side: 'direct', from: 0, to: half },
    { side: 'proxy', from: 0, to: half },
    { side: 'proxy', from: half, to: c.requests },
    { side: 'direct', from: half, to: c.requests },
  ];
  const results: Record<'direct' | 'proxy', Round[]> = { direct: [], proxy: [] };
  for (const r of rounds) {
    if (r.to <= r.from) continue;
    await sleep(250);
    results[r.side].push(await measureRound(env, c, r.side, r.from, r.to));
  }
  const out: CaseResult = {
    id: c.id, title: c.title, kind: c.kind, resourceVersion: c.resourceVersion, indexed: c.indexed, concurrency: c.concurrency,
    check: { direct: d, proxy: p, match: d === p },
    direct: combine(results.direct, 'direct'),
    proxy: combine(results.proxy, 'proxy'),
  };
  log(`  direct p50 ${out.direct.latency.p50Ms.toFixed(2)} p99 ${out.direct.latency.p99Ms.toFixed(2)} ms ${out.direct.requestsPerSecond}/s; ` +
    `proxy p50 ${out.proxy.latency.p50Ms.toFixed(2)} p99 ${out.proxy.latency.p99Ms.toFixed(2)} ms ${out.proxy.requestsPerSecond}/s; ` +
    `apiserver CPU/1k ${out.direct.cpuSecondsPer1000['apiserver']} vs ${out.proxy.cpuSecondsPer1000['apiserver']}; from cache ${out.proxy.cacheServed}/${out.proxy.requests}` +
    (out.direct.errors + out.proxy.errors > 0 ? `; ERRORS direct ${out.direct.errors} (${out.direct.firstError ?? ''}) proxy ${out.proxy.errors} (${out.proxy.firstError ?? ''})` : ''));
  return out;
}

// ---------------------------------------------------------------- memory

async function memory(proxy: ProxyProcess, when: string): Promise<MemoryResult> {
  const m = await proxy.metrics();
  const cacheBytes = sumBy(m, 'kube_cache_proxy_cache_bytes', 'resource');
  const cacheObjects = sumBy(m, 'kube_cache_proxy_cache_objects', 'resource');
  return {
    when,
    rssBytes: sum(m, 'process_resident_memory_bytes'),
    heapUsedBytes: sum(m, 'nodejs_heap_size_used_bytes'),
    externalBytes: sum(m, 'nodejs_external_memory_bytes'),
    cacheBytes,
    cacheObjects,
    totalCacheBytes: Object.values(cacheBytes).reduce((a, b) => a + b, 0),
    totalObjects: Object.values(cacheObjects).reduce((a, b) => a + b, 0),
  };
}

// ---------------------------------------------------------------- mixed read/write workload

/** The apiserver's own /metrics (its request counters count what the proxy costs it). */
async function apiserverMetrics(direct: Client): Promise<Metrics> {
  const r = await direct.get('/metrics', true);
  if (r.status !== 200 || !r.body) throw new Error(`apiserver /metrics: ${r.status}`);
  return parseMetrics(r.body.toString('utf8').split('\n').filter((l) => l.startsWith('apiserver_request_total{')).join('\n'));
}

async function mixed(env: Env): Promise<MixedResult> {
  const { o, layout } = env;
  const seconds = o.mixedSeconds;
  log(`mixed workload: ${seconds} s, ${o.writesPerSecond} writes/s direct, consistent reads through the proxy at concurrency ${o.concurrency} (+1 quiet-resource reader via the proxy, +1 direct)`);
  const rand = prng(o.seed + 7);
  const pick = (n: number) => Math.floor(rand() * n);
  const cmOf = (): { ns: number; k: number } => ({ ns: pick(o.namespaces), k: pick(o.configMapsPerNamespace) });
  const reads: { kind: string; path: () => string }[] = [
    { kind: 'pods by spec.nodeName', path: () => `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${nodeName(pick(o.nodes))}`)}` },
    { kind: 'configmaps in a namespace', path: () => `/api/v1/namespaces/${namespaceName(pick(o.namespaces))}/configmaps` },
    { kind: 'pods in a namespace', path: () => `/api/v1/namespaces/${namespaceName(pick(o.namespaces))}/pods` },
    { kind: 'configmaps by label app=<x>', path: () => `/api/v1/configmaps?labelSelector=${encodeURIComponent(`app=${appName(pick(APP_COUNT))}`)}` },
    { kind: 'pods by label in a namespace', path: () => `/api/v1/namespaces/${namespaceName(pick(o.namespaces))}/pods?labelSelector=${encodeURIComponent(`app=${appName(pick(APP_COUNT))}`)}` },
  ];
  // A quiet resource: nothing writes Nodes here while the cluster's resourceVersion keeps moving.
  // One reader of its own through the proxy (so its waits do not slow the others), one direct.
  const quietPath = () => `/api/v1/nodes?fieldSelector=${encodeURIComponent(`metadata.name=${nodeName(pick(o.nodes))}`)}`;
  const quiet = { kind: QUIET_READER, path: quietPath };
  const quietDirect = { kind: QUIET_DIRECT, path: quietPath };
  const readLat: Record<string, number[]> = {};
  const readErr: Record<string, number> = {};
  let readErrorsFirst: string | undefined;
  const writeLat: number[] = [];
  let writeErrors = 0;
  let writes = 0;
  let skipped = 0;

  const m0 = await env.proxy.metrics();
  const a0 = await apiserverMetrics(env.direct);
  const c0: CpuSample = sampleCpu(env.pids);
  const started = performance.now();
  const deadline = started + seconds * 1000;

  let nextRead = 0;
  const reader = async (only?: { kind: string; path: () => string }, client: Client = env.viaProxy) => {
    while (performance.now() < deadline) {
      const r = only ?? reads[nextRead++ % reads.length];
      if (!r) return;
      try {
        const res = await client.get(r.path());
        (readLat[r.kind] ??= []).push(res.ms);
        if (res.status !== 200) {
          readErr[r.kind] = (readErr[r.kind] ?? 0) + 1;
          readErrorsFirst ??= `${r.kind}: ${res.status} ${res.body?.toString('utf8').slice(0, 200) ?? ''}`;
        }
      } catch (err) {
        readErr[r.kind] = (readErr[r.kind] ?? 0) + 1;
        readErrorsFirst ??= `${r.kind}: ${String(err)}`;
      }
    }
  };

  const writer = async () => {
    const interval = 1000 / o.writesPerSecond;
    const inflight = new Set<Promise<void>>();
    for (let k = 0; ; k++) {
      const due = started + k * interval;
      if (due >= deadline) break;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (inflight.size >= 64) {
        skipped++;
        continue;
      }
      let req: Promise<unknown>;
      if (k % 2 === 0) {
        const ref = podRef(pick(o.pods), layout);
        req = env.direct.request('PATCH', `/api/v1/namespaces/${ref.namespace}/pods/${ref.name}`, {
          body: JSON.stringify({ metadata: { labels: { 'bench/touch': String(k) } } }), contentType: 'application/merge-patch+json',
        });
      } else {
        const cm = cmOf();
        const name = (configMapObject(cm.ns, cm.k) as { metadata: { name: string } }).metadata.name;
        req = env.direct.request('PATCH', `/api/v1/namespaces/${namespaceName(cm.ns)}/configmaps/${name}`, {
          body: JSON.stringify({ data: { revision: String(k) } }), contentType: 'application/merge-patch+json',
        });
      }
      const p: Promise<void> = req.then(
        (r) => {
          const rr = r as { status: number; ms: number };
          writes++;
          writeLat.push(rr.ms);
          if (rr.status >= 300) writeErrors++;
        },
        () => {
          writes++;
          writeErrors++;
        },
      ).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all([...inflight]);
  };

  await Promise.all([writer(), reader(quiet), reader(quietDirect, env.direct), ...Array.from({ length: o.concurrency }, () => reader())]);
  const elapsed = (performance.now() - started) / 1000;
  const c1 = sampleCpu(env.pids);
  await sleep(200);
  const m1 = await env.proxy.metrics();
  const a1 = await apiserverMetrics(env.direct);

  const resources: Record<string, MixedResource> = {};
  for (const resource of ['pods', 'configmaps', 'nodes']) {
    const want = { resource, verb: 'list' };
    const served = sum(m1, 'kube_cache_proxy_cache_served_total', want) - sum(m0, 'kube_cache_proxy_cache_served_total', want);
    const fallbacks = deltaOf(sumBy(m0, 'kube_cache_proxy_cache_fallbacks_total', 'reason', want), sumBy(m1, 'kube_cache_proxy_cache_fallbacks_total', 'reason', want));
    const fb = Object.values(fallbacks).reduce((a, b) => a + b, 0);
    const h = histogramDelta(m0, m1, 'kube_cache_proxy_freshness_wait_seconds', { resource });
    const timeouts = histogramDelta(m0, m1, 'kube_cache_proxy_freshness_wait_seconds', { resource, outcome: 'timeout' }).count;
    const atZero = h.buckets[0]?.count ?? 0;
    // What the apiserver saw: every LIST of the resource, less the reads the proxy forwarded and the
    // direct reader's (nodes): the rest are what the proxy sent for the reads it served (probes; its
    // own relists if any).
    const listed = { resource, verb: 'LIST' };
    const apiserverLists = sum(a1, 'apiserver_request_total', listed) - sum(a0, 'apiserver_request_total', listed);
    const directReads = resource === 'nodes' ? (readLat[quietDirect.kind]?.length ?? 0) + (readErr[quietDirect.kind] ?? 0) : 0;
    const upstreamForServed = Math.max(0, apiserverLists - fb - directReads);
    const probes = sum(m1, 'kube_cache_proxy_freshness_probes_total', { resource }) - sum(m0, 'kube_cache_proxy_freshness_probes_total', { resource });
    resources[resource] = {
      apiserverLists,
      upstreamPerServed: served > 0 ? upstreamForServed / served : Number.NaN,
      sharedProbes: probes,
      reads: served + fb,
      served,
      fallbacks,
      hitRatio: served + fb > 0 ? served / (served + fb) : Number.NaN,
      freshness: { ...h, timeouts, waited: h.count - atZero, p50Seconds: histogramQuantile(h, 0.5), p99Seconds: histogramQuantile(h, 0.99) },
    };
  }
  const readsOut: Record<string, { errors: number; latency: ReturnType<typeof latencyStats> }> = {};
  for (const r of [...reads, quiet, quietDirect]) readsOut[r.kind] = { errors: readErr[r.kind] ?? 0, latency: latencyStats(readLat[r.kind] ?? []) };
  const out: MixedResult = {
    seconds: round(elapsed, 2),
    writesPerSecondTarget: o.writesPerSecond,
    writes,
    writeErrors,
    writesSkipped: skipped,
    writeLatency: latencyStats(writeLat),
    reads: readsOut,
    ...(readErrorsFirst ? { readErrorsFirst } : {}),
    resources,
    cpuSeconds: Object.fromEntries(Object.entries(cpuDelta(c0, c1)).map(([k, v]) => [k, round(v, 3)])),
  };
  for (const [k, v] of Object.entries(resources)) log(`  ${k}: ${v.served}/${v.reads} served (${(100 * v.hitRatio).toFixed(1)}%), fallbacks ${JSON.stringify(v.fallbacks)}, upstream requests per served read ${v.upstreamPerServed?.toFixed(3)} (shared probes ${v.sharedProbes})`);
  log(`  quiet resource p50: ${readsOut[quiet.kind]?.latency.p50Ms.toFixed(2)} ms via the proxy vs ${readsOut[quietDirect.kind]?.latency.p50Ms.toFixed(2)} ms direct`);
  return out;
}

// ---------------------------------------------------------------- output

/** The source the proxy under test was built from (read-only git queries). */

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = optionsOrExit(parseArgs, USAGE);
  if (typeof o === 'number') return o;
  const opts = o;
  const runStarted = performance.now();
  const date = new Date();
  const root = repoRoot();
  const layout: Layout = { nodes: opts.nodes, pods: opts.pods, namespaces: opts.namespaces, configMapsPerNamespace: opts.configMapsPerNamespace };
  const loadAtStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'kcp-bench-'));
  log(`scale ${scaleLabel(opts)}; working directory ${dir}`);

  let cluster: TestCluster | undefined;
  let proxy: ProxyProcess | undefined;
  const clients: Client[] = [];
  let interrupted = false;
  let failed = false;
  const cleanup = async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await proxy?.stop().catch(() => undefined);
    await stopAllProxies();
    await cluster?.down().catch(() => undefined);
    if (!opts.keepCluster && !failed) rmSync(dir, { recursive: true, force: true });
    else log(`cluster directory kept (logs, etcd data): ${dir}`);
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: stopping the proxy and the cluster');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    log('starting the cluster (etcd + 1 kube-apiserver)');
    cluster = await TestCluster.up({ dir, apiservers: 1, log });
    const info = cluster.info;
    const apiserver = info.apiservers[0];
    if (!apiserver) throw new Error('the cluster has no apiserver');
    const ca = readFileSync(info.caFile);
    const token = info.users.admin.token ?? '';
    const connections = Math.max(opts.concurrency, opts.fullConcurrency, opts.populateConcurrency);
    const direct = new Client('direct', apiserver.url, { ca, token, connections });
    clients.push(direct);

    // The proxy without a cache: its idle memory is the baseline a cached object adds to.
    log('baseline: the proxy with --cache-resources none');
    const base = await ProxyProcess.start(cluster, join(dir, 'proxy-baseline.log'), ['--cache-resources', 'none']);
    await sleep(3000);
    const bm = await base.metrics();
    const baseline = { rssBytes: sum(bm, 'process_resident_memory_bytes'), heapUsedBytes: sum(bm, 'nodejs_heap_size_used_bytes'), externalBytes: sum(bm, 'nodejs_external_memory_bytes') };
    await base.stop();

    log(`populating: ${opts.namespaces} namespaces, ${opts.nodes} nodes, ${opts.namespaces * opts.configMapsPerNamespace} configmaps, ${opts.pods} pods`);
    const cpuBeforePopulate = sampleCpu({ apiserver: apiserver.pid });
    const pop = await populate(layout, direct, opts.populateConcurrency, log);
    const popCpu = cpuDelta(cpuBeforePopulate, sampleCpu({ apiserver: apiserver.pid }))['apiserver'] ?? Number.NaN;
    log(`populated in ${pop.seconds.toFixed(1)} s (pods ${(opts.pods / pop.podSeconds).toFixed(0)}/s)`);

    log(`starting the proxy (cache on${opts.proxyArgs.length ? `, ${opts.proxyArgs.join(' ')}` : ', defaults'}) and waiting for /readyz`);
    proxy = await ProxyProcess.start(cluster, join(dir, 'proxy.log'), opts.proxyArgs);
    log(`proxy ready in ${proxy.readySeconds.toFixed(1)} s; settling ${opts.settleSeconds} s`);
    const pids = { apiserver: apiserver.pid, etcd: info.etcd.pid, proxy: proxy.pid };
    const idle0 = sampleCpu(pids);
    // Memory: no forced GC is possible from outside, so sample once a second while it settles and
    // keep the lowest values (closest to what is live after a collection).
    const settleSamples: MemoryResult[] = [];
    const settleEnd = performance.now() + opts.settleSeconds * 1000;
    while (performance.now() < settleEnd) {
      await sleep(Math.min(1000, Math.max(0, settleEnd - performance.now())));
      settleSamples.push(await memory(proxy, 'settle'));
    }
    const idle1 = sampleCpu(pids);
    const idleSeconds = (idle1.at - idle0.at) / 1000;
    const idleCpuPerSecond = Object.fromEntries(Object.entries(cpuDelta(idle0, idle1)).map(([k, v]) => [k, round(v / idleSeconds, 4)]));
    const last = settleSamples[settleSamples.length - 1] ?? (await memory(proxy, 'settle'));
    const minOf = (f: (m: MemoryResult) => number) => Math.min(...settleSamples.map(f), f(last));
    const mem: MemoryResult[] = [{
      ...last,
      when: `after sync, lowest of ${settleSamples.length} samples over ${opts.settleSeconds} s`,
      rssBytes: minOf((m) => m.rssBytes),
      heapUsedBytes: minOf((m) => m.heapUsedBytes),
      externalBytes: minOf((m) => m.externalBytes),
    }];
    const podsBytes = mem[0]?.cacheBytes['pods'] ?? Number.NaN;
    const podsCount = mem[0]?.cacheObjects['pods'] ?? Number.NaN;
    log(`proxy memory: RSS ${mem[0]?.rssBytes}, heap ${mem[0]?.heapUsedBytes}, raw JSON ${mem[0]?.totalCacheBytes} (pods ${podsCount}, ${Math.round(podsBytes / podsCount)} B each)`);

    const viaProxy = new Client('proxy', proxy.url, { ca, token, connections });
    clients.push(viaProxy);
    const env: Env = { o: opts, layout, cluster, direct, viaProxy, proxy, pids };

    const cases: CaseResult[] = [];
    for (const c of caseSpecs(opts, layout)) cases.push(await runCase(env, c));
    const mixedResult = opts.mixedSeconds > 0 ? await mixed(env) : undefined;
    await sleep(2000);
    mem.push(await memory(proxy, 'after the load'));

    const runSeconds = (performance.now() - runStarted) / 1000;
    const cpu0 = cpus()[0];
    const result: BenchResult = {
      date: date.toISOString(),
      command: commandLine('bench', 'run.js'),
      source: sourceInfo(root),
      scale: scaleLabel(opts),
      options: { ...opts },
      machine: {
        cores: cpus().length,
        cpuModel: cpu0?.model.trim() ?? 'unknown',
        memoryBytes: totalmem(),
        os: `${osType()} ${release()}`,
        node: process.version,
        kubernetes: info.kubernetesVersion,
        loadAverageAtStart: loadAtStart.map((v) => round(v, 2)),
      },
      population: {
        namespaces: opts.namespaces,
        nodes: opts.nodes,
        configMaps: opts.namespaces * opts.configMapsPerNamespace,
        pods: opts.pods,
        seconds: round(pop.seconds, 1),
        podsPerSecond: round(opts.pods / pop.podSeconds, 1),
        meanPodBytes: Math.round(podsBytes / podsCount),
        apiserverCpuSeconds: round(popCpu, 2),
      },
      proxy: { readySeconds: round(proxy.readySeconds, 2), baseline, idleCpuPerSecond },
      memory: mem,
      cases,
      mixed: mixedResult,
      targets: evaluateTargets(cases, mem[0], mixedResult),
      runSeconds: round(runSeconds, 1),
    };
    const md = markdown(result);
    const resultsDir = join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    const file = opts.out ?? join(resultsDir, `${stamp}-${scaleLabel(opts)}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    if (opts.writeReadme) updateReadme(join(root, 'bench', 'README.md'), 'bench-results', 'Latest results', md);
    process.stdout.write(`${md}\n`);
    log(`results: ${file}${opts.writeReadme ? ' and bench/README.md' : ''}; run time ${runSeconds.toFixed(0)} s`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    failed = true;
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (proxy) log(`proxy log: ${proxy.logFile}`);
    return 1;
  } finally {
    if (!interrupted) await cleanup();
  }
}

process.exitCode = await main();
