// The mixed phase of `npm run bench`: writes direct to the apiserver while consistent LISTs go
// through the proxy, plus one reader of a quiet resource through the proxy and one direct. Measures
// the consistent-read hit ratio, the freshness waits, what the served reads cost the apiserver in
// requests, and the quiet reader's latency against direct.
import type { Client } from './client.js';
import { APP_COUNT, appName, configMapObject, namespaceName, nodeName, podRef } from './objects.js';
import { cpuDelta, sampleCpu, type CpuSample } from './proc.js';
import { deltaOf, histogramDelta, histogramQuantile, sum, sumBy } from './prom.js';
import { QUIET_DIRECT, QUIET_READER, type MixedResource, type MixedResult } from './results.js';
import { apiserverRequests, log, REVIEW_RESOURCES, type Env } from './run-env.js';
import { latencyStats, prng, round, sleep } from './stats.js';

export async function mixed(env: Env): Promise<MixedResult> {
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
  const a0 = await apiserverRequests(env.direct);
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
  const a1 = await apiserverRequests(env.direct);

  const resources: Record<string, MixedResource> = {};
  let upstreamForServedAll = 0;
  let servedAll = 0;
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
    upstreamForServedAll += upstreamForServed;
    servedAll += served;
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
  // Reviews (local mode) cannot be told apart by the resource read: counted for the phase as a whole.
  const reviews = REVIEW_RESOURCES.reduce((n, r) => n + sum(a1, 'apiserver_request_total', { resource: r }) - sum(a0, 'apiserver_request_total', { resource: r }), 0);
  const readsOut: Record<string, { errors: number; latency: ReturnType<typeof latencyStats> }> = {};
  for (const r of [...reads, quiet, quietDirect]) readsOut[r.kind] = { errors: readErr[r.kind] ?? 0, latency: latencyStats(readLat[r.kind] ?? []) };
  const out: MixedResult = {
    seconds: round(elapsed, 2),
    concurrency: o.concurrency,
    writesPerSecondTarget: o.writesPerSecond,
    writes,
    writeErrors,
    writesSkipped: skipped,
    writeLatency: latencyStats(writeLat),
    reads: readsOut,
    ...(readErrorsFirst ? { readErrorsFirst } : {}),
    resources,
    reviews,
    upstreamPerServed: servedAll > 0 ? round((upstreamForServedAll + reviews) / servedAll, 4) : Number.NaN,
    cpuSeconds: Object.fromEntries(Object.entries(cpuDelta(c0, c1)).map(([k, v]) => [k, round(v, 3)])),
  };
  for (const [k, v] of Object.entries(resources)) log(`  ${k}: ${v.served}/${v.reads} served (${(100 * v.hitRatio).toFixed(1)}%), fallbacks ${JSON.stringify(v.fallbacks)}, upstream requests per served read ${v.upstreamPerServed?.toFixed(3)} (shared probes ${v.sharedProbes})`);
  log(`  all resources: upstream requests per served read ${out.upstreamPerServed?.toFixed(3)} (reviews ${reviews})`);
  log(`  quiet resource p50: ${readsOut[quiet.kind]?.latency.p50Ms.toFixed(2)} ms via the proxy vs ${readsOut[quietDirect.kind]?.latency.p50Ms.toFixed(2)} ms direct`);
  return out;
}

