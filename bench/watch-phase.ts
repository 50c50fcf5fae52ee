// One phase of the watch benchmark (a watcher count, direct or through the proxy), and the baseline
// churn with no watcher open: idle CPU over the settle window, then the watches opened from a
// LIST's resourceVersion, the churn, the drain until every expected event arrived, and what the
// proxy's /metrics and memory say about it.
import type { WatchBenchOptions } from './watch-args.js';
import type { Client } from './client.js';
import { nodeName, type Layout } from './objects.js';
import { cpuDelta, sampleCpu, type CpuSample } from './proc.js';
import { deltaOf, sum, sumBy, type Metrics } from './prom.js';
import { bytesText, fmt, latencyStats, prng, round, sleep } from './stats.js';
import type { CountsReply, OpenReply, ReportReply, WatchSpec } from './watch-clients.js';
import type { ClientsProcess } from './watch-clients-process.js';
import { churn, patchTargets } from './watch-churn.js';
import { expectedEvents, matchDeliveries, watchersOfNode } from './watch-delivery.js';
import { log } from './watch-log.js';
import { proxyMemory, settledMemory, type ProxyHandle } from './watch-proxy.js';
import type { BaselineResult, PhaseResult, ProxyMemory, Side } from './watch-results.js';

/** What every phase of a run shares: the options, the cluster's clients and the processes to measure. */
export interface Env {
  readonly o: WatchBenchOptions;
  readonly layout: Layout;
  readonly ca: Buffer;
  readonly token: string;
  readonly direct: Client;
  readonly clients: ClientsProcess;
  readonly basePids: Readonly<Record<string, number>>;
}

const roundAll = (r: Readonly<Record<string, number>>, digits = 3): Record<string, number> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, digits)]));

/** The resourceVersion of a consistent LIST of one node's pods, as a kubelet's reflector starts. */
async function listResourceVersion(client: Client, node: string): Promise<string> {
  const r = await client.get(`/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${node}`)}`, true);
  const text = r.body?.toString('utf8') ?? '';
  if (r.status !== 200) throw new Error(`LIST via ${client.name}: ${r.status} ${text.slice(0, 300)}`);
  const v: unknown = JSON.parse(text);
  const rv = typeof v === 'object' && v !== null && 'metadata' in v && typeof v.metadata === 'object' && v.metadata !== null && 'resourceVersion' in v.metadata ? v.metadata.resourceVersion : undefined;
  if (typeof rv !== 'string' || rv === '') throw new Error(`LIST via ${client.name}: no resourceVersion`);
  return rv;
}

/** The baseline: the same churn with no watcher open (neither side), for what the patches alone cost. */
export async function baselineChurn(env: Env): Promise<BaselineResult> {
  const { o, layout } = env;
  log(`baseline: the churn with no watchers (${o.updatesPerSecond} patches/s for ${o.churnSeconds} s)`);
  const targets = patchTargets(o, o.nodes);
  const rand = prng(o.seed * 7919);
  const plan = Array.from({ length: Math.ceil(o.updatesPerSecond * o.churnSeconds) }, () => targets.plan(rand));
  await sleep(o.settleSeconds * 1000);
  const c0 = sampleCpu(env.basePids);
  const ch = await churn(o, layout, env.direct, plan, 0);
  const c1 = sampleCpu(env.basePids);
  const r: BaselineResult = {
    seconds: round((c1.at - c0.at) / 1000, 2),
    patches: ch.pods.length - ch.skipped,
    patchErrors: ch.patchErrors,
    achievedPerSecond: round((ch.pods.length - ch.skipped - ch.patchErrors) / ch.seconds, 1),
    patchLatency: latencyStats(ch.latenciesMs),
    cpuSeconds: roundAll(cpuDelta(c0, c1)),
  };
  log(`  apiserver CPU ${fmt(r.cpuSeconds['apiserver'], 2)} s, etcd ${fmt(r.cpuSeconds['etcd'], 2)} s over ${r.seconds} s; patch p50 ${fmt(r.patchLatency.p50Ms)} p99 ${fmt(r.patchLatency.p99Ms)} ms`);
  await sleep(2000);
  return r;
}

/** One phase: `watchers` watches `side` (direct, or through `px`), the churn, and what it cost. */
export async function phase(env: Env, side: Side, watchers: number, index: number, px: ProxyHandle | undefined): Promise<PhaseResult> {
  const { o, layout } = env;
  const proxy = px?.proxy;
  const origin = side === 'proxy' ? proxy?.url : undefined;
  const listClient = side === 'proxy' ? px?.client : env.direct;
  if (!listClient) throw new Error('no client for the proxy');
  const pids: Record<string, number> = { ...env.basePids, clients: env.clients.pid };
  if (side === 'proxy' && proxy) pids['proxy'] = proxy.pid;
  log(`phase ${index + 1}: ${watchers} watchers ${side === 'direct' ? 'direct to the apiserver' : 'through the proxy'}`);

  // Idle: CPU over the settle window (and the proxy's memory before the watchers).
  const idle0 = sampleCpu(pids);
  let memoryBefore: ProxyMemory | undefined;
  if (px) memoryBefore = await settledMemory(px, o.settleSeconds);
  else await sleep(o.settleSeconds * 1000);
  const idle1 = sampleCpu(pids);
  const idleSeconds = (idle1.at - idle0.at) / 1000;
  const idleCpuPerSecond = Object.fromEntries(Object.entries(cpuDelta(idle0, idle1)).map(([k, v]) => [k, round(v / idleSeconds, 4)]));

  // Open: a LIST for the resourceVersion, then the watches from it (no initial events).
  const rv = await listResourceVersion(listClient, nodeName(0));
  const watches: WatchSpec[] = Array.from({ length: watchers }, (_, i) => {
    const q = new URLSearchParams({
      allowWatchBookmarks: 'true',
      fieldSelector: `spec.nodeName=${nodeName(i % o.nodes)}`,
      resourceVersion: rv,
      timeoutSeconds: String(o.watchTimeoutSeconds),
      watch: 'true',
    });
    return { id: i, path: `/api/v1/pods?${q.toString()}` };
  });
  const m0 = proxy ? await proxy.metrics() : undefined;
  const c0 = sampleCpu(pids);
  const opened = await env.clients.call<OpenReply>({ op: 'open', origin: origin ?? env.direct.origin, ca: env.ca.toString('utf8'), token: env.token, watches, concurrency: o.openConcurrency });
  const c1 = sampleCpu(pids);
  log(`  opened ${opened.opened}/${watchers} in ${opened.seconds.toFixed(2)} s (headers p50 ${fmt(opened.headers.p50Ms)} p99 ${fmt(opened.headers.p99Ms)} ms)` +
    (opened.firstFailure ? `; failures ${JSON.stringify(opened.failures)}: ${opened.firstFailure}` : ''));
  let memoryAfterOpen: ProxyMemory | undefined;
  if (px) memoryAfterOpen = await settledMemory(px, o.settleSeconds);
  else await sleep(o.settleSeconds * 1000);
  const m1 = proxy ? await proxy.metrics() : undefined;

  // Churn: the same patch sequence for both sides of one watcher count.
  const targets = patchTargets(o, watchers);
  const rand = prng(o.seed * 1_000_003 + watchers);
  const total = Math.ceil(o.updatesPerSecond * o.churnSeconds);
  const plan = Array.from({ length: total }, () => targets.plan(rand));
  const seqBase = (index + 1) * 10_000_000;
  log(`  churn: ${o.updatesPerSecond} patches/s for ${o.churnSeconds} s over the pods of ${targets.nodes} watched nodes`);
  const c2 = sampleCpu(pids);
  const ch = await churn(o, layout, env.direct, plan, seqBase);
  // Expected: every watcher of a patched pod's node gets the event.
  const perNode = watchersOfNode(watchers, o.nodes);
  const expectation = expectedEvents(ch, o.nodes, perNode);
  const { expected } = expectation;
  // Drain: until every expected event arrived, or the drain timeout.
  const drainStart = performance.now();
  const drainEnd = drainStart + o.drainSeconds * 1000;
  let counts = await env.clients.call<CountsReply>({ op: 'counts' });
  while (counts.received < expected && performance.now() < drainEnd) {
    await sleep(50);
    counts = await env.clients.call<CountsReply>({ op: 'counts' });
  }
  const c3: CpuSample = sampleCpu(pids);
  const drainSeconds = (performance.now() - drainStart) / 1000;
  const m2 = proxy ? await proxy.metrics() : undefined;
  const memoryAfterChurn = proxy ? await proxyMemory(proxy) : undefined;
  const report = await env.clients.call<ReportReply>({ op: 'report' });
  await env.clients.call({ op: 'close' });
  // The proxy must notice every client going away: its watchers gauge back to 0.
  let m3: Metrics | undefined;
  let gone = Number.NaN;
  if (proxy) {
    const closedAt = performance.now();
    for (;;) {
      m3 = await proxy.metrics();
      if (sum(m3, 'kube_cache_proxy_cache_watchers', { resource: 'pods' }) === 0) {
        gone = (performance.now() - closedAt) / 1000;
        break;
      }
      if (performance.now() - closedAt > 15_000) break;
      await sleep(100);
    }
  }

  // Match what arrived against what was expected.
  const { received, duplicates, unexpected, watchersWithMisses, latencies } = matchDeliveries(report, ch, expectation, watchers, o.nodes, seqBase);
  const churnResult: PhaseResult['churn'] = {
    seconds: round(ch.seconds, 2),
    targetPerSecond: o.updatesPerSecond,
    patches: ch.pods.length - ch.skipped,
    patchErrors: ch.patchErrors,
    ...(ch.firstPatchError ? { firstPatchError: ch.firstPatchError } : {}),
    skipped: ch.skipped,
    achievedPerSecond: round((ch.pods.length - ch.skipped - ch.patchErrors) / ch.seconds, 1),
    patchLatency: latencyStats(ch.latenciesMs),
    windowSeconds: round((c3.at - c2.at) / 1000, 2),
    drainSeconds: round(drainSeconds, 2),
    cpuSeconds: roundAll(cpuDelta(c2, c3)),
  };
  const gauge = (m: Metrics | undefined, name: string) => (m ? sum(m, name, { resource: 'pods' }) : 0);
  const by = (m: Metrics | undefined, name: string, label: string, want: Record<string, string>) => (m ? sumBy(m, name, label, want) : {});
  const result: PhaseResult = {
    side,
    watchers,
    watchersPerNode: { min: perNode(Math.min(watchers, o.nodes) - 1), max: perNode(0) },
    watchedNodes: Math.min(watchers, o.nodes),
    listResourceVersion: rv,
    idleCpuPerSecond,
    open: {
      seconds: round(opened.seconds, 3),
      opened: opened.opened,
      failures: opened.failures,
      ...(opened.firstFailure ? { firstFailure: opened.firstFailure } : {}),
      headers: opened.headers,
      cpuSeconds: roundAll(cpuDelta(c0, c1)),
    },
    churn: churnResult,
    events: {
      expected,
      received,
      missed: expected - received,
      watchersWithMisses,
      duplicates,
      unexpected,
      bookmarks: report.bookmarks,
      otherEvents: report.otherEvents,
      ...(report.firstOther ? { firstOther: report.firstOther } : {}),
      streamsEnded: report.ended,
      ...(report.firstEnded ? { firstEnded: report.firstEnded } : {}),
      wireBytes: report.bytes,
    },
    delivery: latencyStats(latencies),
    ...(proxy && memoryBefore && memoryAfterOpen && memoryAfterChurn ? {
      proxy: {
        memoryBefore,
        memoryAfterOpen,
        memoryAfterChurn,
        rssPerWatcherBytes: Math.round((memoryAfterOpen.rssBytes - memoryBefore.rssBytes) / watchers),
        heapPerWatcherBytes: Math.round((memoryAfterOpen.heapUsedBytes - memoryBefore.heapUsedBytes) / watchers),
        externalPerWatcherBytes: Math.round((memoryAfterOpen.externalBytes - memoryBefore.externalBytes) / watchers),
        watchesServedFromCache: m0 && m1 ? sum(m1, 'kube_cache_proxy_cache_served_total', { resource: 'pods', verb: 'watch' }) - sum(m0, 'kube_cache_proxy_cache_served_total', { resource: 'pods', verb: 'watch' }) : 0,
        watchFallbacks: deltaOf(by(m0, 'kube_cache_proxy_cache_fallbacks_total', 'reason', { resource: 'pods', verb: 'watch' }), by(m2, 'kube_cache_proxy_cache_fallbacks_total', 'reason', { resource: 'pods', verb: 'watch' })),
        watchersAfterOpen: gauge(m1, 'kube_cache_proxy_cache_watchers'),
        watchersClosed: deltaOf(by(m0, 'kube_cache_proxy_cache_watchers_closed_total', 'reason', { resource: 'pods' }), by(m2, 'kube_cache_proxy_cache_watchers_closed_total', 'reason', { resource: 'pods' })),
        watchersGoneSeconds: round(gone, 2),
        watchersLeft: gauge(m3, 'kube_cache_proxy_cache_watchers'),
        closedAtEnd: deltaOf(by(m2, 'kube_cache_proxy_cache_watchers_closed_total', 'reason', { resource: 'pods' }), by(m3, 'kube_cache_proxy_cache_watchers_closed_total', 'reason', { resource: 'pods' })),
        memorySampling: px?.inspector ? `after ${o.settleSeconds} s, a forced full GC (inspector), then one sample` : `lowest of once-a-second samples over ${o.settleSeconds} s`,
        linesQueued: gauge(m2, 'kube_cache_proxy_cache_watch_lines_total') - gauge(m1, 'kube_cache_proxy_cache_watch_lines_total'),
        upstreamWatchRestarts: deltaOf(by(m0, 'kube_cache_proxy_cache_watch_restarts_total', 'resource', {}), by(m2, 'kube_cache_proxy_cache_watch_restarts_total', 'resource', {})),
        relists: deltaOf(by(m0, 'kube_cache_proxy_cache_relists_total', 'resource', {}), by(m2, 'kube_cache_proxy_cache_relists_total', 'resource', {})),
      },
    } : {}),
  };
  log(`  events ${received}/${expected} (missed ${expected - received}, duplicates ${duplicates}, unexpected ${unexpected}); delivery p50 ${fmt(result.delivery.p50Ms)} p99 ${fmt(result.delivery.p99Ms)} ms; ` +
    `apiserver CPU ${fmt(churnResult.cpuSeconds['apiserver'], 2)} s over ${churnResult.windowSeconds} s` +
    (result.proxy ? `; proxy CPU ${fmt(churnResult.cpuSeconds['proxy'], 2)} s; RSS/watcher ${bytesText(result.proxy.rssPerWatcherBytes)}, heap/watcher ${bytesText(result.proxy.heapPerWatcherBytes)}; served ${result.proxy.watchesServedFromCache}, fallbacks ${JSON.stringify(result.proxy.watchFallbacks)}` : '') +
    (Object.keys(report.ended).length ? `; streams ended ${JSON.stringify(report.ended)}: ${report.firstEnded ?? ''}` : ''));
  // Let the closed connections wind down on both ends before the next phase measures idle CPU.
  await sleep(2000);
  return result;
}
