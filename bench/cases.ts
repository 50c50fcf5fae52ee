// The read cases of `npm run bench`: each measured direct to the apiserver and through the proxy in
// the order direct, proxy, proxy, direct (two halves each, the same request sequence both ways):
// latency, throughput, CPU per process, what the cache served, and what the proxy side cost the
// apiserver in requests.
import type { BenchOptions } from './args.js';
import { closedLoop, type Client, type LoadResult } from './client.js';
import { APP_COUNT, appName, namespaceName, nodeName, podRef, type Layout } from './objects.js';
import { cpuDelta, sampleCpu } from './proc.js';
import { deltaOf, histogramDelta, sum, sumBy, type Metrics } from './prom.js';
import type { CaseResult, SideResult, Upstream } from './results.js';
import { apiserverRequests, log, monotonicUs, REVIEW_RESOURCES, type Env } from './run-env.js';
import { latencyStats, prng, round, sleep } from './stats.js';

export interface CaseSpec {
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

export function caseSpecs(o: BenchOptions, layout: Layout): CaseSpec[] {
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

interface Freshness {
  reads: number;
  waited: number;
  over100ms: number;
  timeouts: number;
  waitSeconds: number;
}

interface Round {
  readonly requests: number;
  readonly load: LoadResult;
  readonly cpu: Record<string, number>;
  readonly served: number;
  readonly fallbacks: Record<string, number>;
  readonly freshness: Freshness;
  readonly upstream: Omit<Upstream, 'perServed'> | undefined;
}

const NO_FRESHNESS: Freshness = { reads: 0, waited: 0, over100ms: 0, timeouts: 0, waitSeconds: 0 };

function freshnessDelta(m0: Metrics, m1: Metrics, resource: string): Freshness {
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

/** The proxy side's upstream requests between two scrapes of the proxy (m) and the apiserver (a). */
function upstreamDelta(m0: Metrics, m1: Metrics, a0: Metrics, a1: Metrics, resource: string, forwarded: number): Omit<Upstream, 'perServed'> {
  const d = (m: [Metrics, Metrics], name: string, want: Record<string, string>) => sum(m[1], name, want) - sum(m[0], name, want);
  const apiserverReads = d([a0, a1], 'apiserver_request_total', { resource, verb: 'LIST' }) + d([a0, a1], 'apiserver_request_total', { resource, verb: 'GET' });
  const reviews: Record<string, number> = {};
  for (const r of REVIEW_RESOURCES) {
    const n = d([a0, a1], 'apiserver_request_total', { resource: r });
    if (n !== 0) reviews[r] = n;
  }
  const reviewCount = Object.values(reviews).reduce((a, b) => a + b, 0);
  return {
    apiserverReads,
    reviews,
    forwarded,
    forServed: Math.max(0, apiserverReads + reviewCount - forwarded),
    sharedProbes: d([m0, m1], 'kube_cache_proxy_freshness_probes_total', { resource }),
    freshnessReads: d([m0, m1], 'kube_cache_proxy_freshness_reads_total', { resource }),
  };
}

async function measureRound(env: Env, c: CaseSpec, side: 'direct' | 'proxy', from: number, to: number): Promise<Round> {
  const client = side === 'direct' ? env.direct : env.viaProxy;
  const want = { resource: 'pods', verb: c.verb };
  // Scrapes before and after, outside the CPU-measured window.
  const m0 = side === 'proxy' ? await env.proxy.metrics() : undefined;
  const a0 = side === 'proxy' ? await apiserverRequests(env.direct) : undefined;
  const c0 = sampleCpu(env.pids);
  const w0 = monotonicUs();
  const load = await closedLoop(client, to - from, c.concurrency, (i) => c.path(from + i));
  const w1 = monotonicUs();
  const c1 = sampleCpu(env.pids);
  if (side === 'proxy' && c.indexed) env.indexedWindow(w0, w1);
  if (!m0 || !a0) return { requests: to - from, load, cpu: cpuDelta(c0, c1), served: 0, fallbacks: {}, freshness: NO_FRESHNESS, upstream: undefined };
  const m1 = await env.proxy.metrics();
  const a1 = await apiserverRequests(env.direct);
  const fallbacks = deltaOf(sumBy(m0, 'kube_cache_proxy_cache_fallbacks_total', 'reason', want), sumBy(m1, 'kube_cache_proxy_cache_fallbacks_total', 'reason', want));
  const forwarded = Object.values(fallbacks).reduce((a, b) => a + b, 0);
  return {
    requests: to - from,
    load,
    cpu: cpuDelta(c0, c1),
    served: sum(m1, 'kube_cache_proxy_cache_served_total', want) - sum(m0, 'kube_cache_proxy_cache_served_total', want),
    fallbacks,
    freshness: freshnessDelta(m0, m1, 'pods'),
    upstream: upstreamDelta(m0, m1, a0, a1, 'pods', forwarded),
  };
}

function sumRecords(records: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function combineUpstream(rounds: readonly Round[], served: number): Upstream | undefined {
  const us = rounds.map((r) => r.upstream).filter((u) => u !== undefined);
  if (us.length === 0) return undefined;
  const total = (f: (u: Omit<Upstream, 'perServed'>) => number) => us.reduce((n, u) => n + f(u), 0);
  const forServed = total((u) => u.forServed);
  return {
    apiserverReads: total((u) => u.apiserverReads),
    reviews: sumRecords(us.map((u) => u.reviews)),
    forwarded: total((u) => u.forwarded),
    forServed,
    perServed: served > 0 ? round(forServed / served, 4) : Number.NaN,
    sharedProbes: total((u) => u.sharedProbes),
    freshnessReads: total((u) => u.freshnessReads),
  };
}

function combine(rounds: readonly Round[], side: 'direct' | 'proxy'): SideResult {
  const latencies = rounds.flatMap((r) => r.load.latenciesMs);
  const wall = rounds.reduce((n, r) => n + r.load.wallSeconds, 0);
  const requests = rounds.reduce((n, r) => n + r.requests, 0);
  const cpu = sumRecords(rounds.map((r) => r.cpu));
  const per1000: Record<string, number> = {};
  for (const [k, v] of Object.entries(cpu)) per1000[k] = round((v / Math.max(1, requests)) * 1000, 4);
  const firstError = rounds.find((r) => r.load.firstError)?.load.firstError;
  const bytes = rounds.reduce((n, r) => n + r.load.bytes, 0);
  const freshness: Freshness = { ...NO_FRESHNESS };
  for (const r of rounds) for (const k of Object.keys(freshness) as (keyof Freshness)[]) freshness[k] += r.freshness[k];
  freshness.waitSeconds = round(freshness.waitSeconds, 4);
  const served = rounds.reduce((n, r) => n + r.served, 0);
  const upstream = combineUpstream(rounds, served);
  return {
    requests,
    errors: rounds.reduce((n, r) => n + r.load.errors, 0),
    statuses: sumRecords(rounds.map((r) => r.load.statuses)),
    ...(firstError ? { firstError } : {}),
    latency: latencyStats(latencies),
    wallSeconds: round(wall, 3),
    requestsPerSecond: round(latencies.length / wall, 1),
    meanWireBytes: Math.round(bytes / Math.max(1, latencies.length)),
    gzipped: rounds.reduce((n, r) => n + r.load.gzipped, 0),
    cpuSeconds: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 3)])),
    cpuSecondsPer1000: per1000,
    ...(side === 'proxy' ? { cacheServed: served, cacheFallbacks: sumRecords(rounds.map((r) => r.fallbacks)), freshness, ...(upstream ? { upstream } : {}) } : {}),
  };
}

export async function runCase(env: Env, c: CaseSpec): Promise<CaseResult> {
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
  const u = out.proxy.upstream;
  log(`  direct p50 ${out.direct.latency.p50Ms.toFixed(2)} p99 ${out.direct.latency.p99Ms.toFixed(2)} ms ${out.direct.requestsPerSecond}/s; ` +
    `proxy p50 ${out.proxy.latency.p50Ms.toFixed(2)} p99 ${out.proxy.latency.p99Ms.toFixed(2)} ms ${out.proxy.requestsPerSecond}/s; ` +
    `apiserver CPU/1k ${out.direct.cpuSecondsPer1000['apiserver']} vs ${out.proxy.cpuSecondsPer1000['apiserver']}; from cache ${out.proxy.cacheServed}/${out.proxy.requests}; ` +
    `upstream per served read ${u ? u.perServed : '–'}` +
    (out.direct.errors + out.proxy.errors > 0 ? `; ERRORS direct ${out.direct.errors} (${out.direct.firstError ?? ''}) proxy ${out.proxy.errors} (${out.proxy.firstError ?? ''})` : ''));
  return out;
}
