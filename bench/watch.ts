// The kube-cache-proxy watch benchmark (a script, not a test): starts its own cluster (etcd + one
// kube-apiserver), populates it directly, and for each watcher count W opens W kubelet-like watches
// (pods, fieldSelector=spec.nodeName=<node>, resourceVersion from a LIST, bookmarks on), once direct
// to the apiserver and once through the proxy (separate phases, same workload), then patches pods
// direct to the apiserver at a fixed rate with the send time in an annotation. Per phase: delivery
// latency, events received versus expected, CPU of the apiserver (and the proxy) during the churn and
// while opening, the proxy's memory per watcher, and the time to open the watchers. See
// bench/README.md ("Watch benchmark").
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster } from '../test/cluster/cluster.js';
import { repoRoot } from '../test/cluster/paths.js';
import { parseWatchArgs, WATCH_USAGE, watchScaleLabel, type WatchBenchOptions } from './watch-args.js';
import { Client } from './client.js';
import { nodeName, podRef, type Layout } from './objects.js';
import { populate } from './population.js';
import { commandLine, sourceInfo, updateReadme } from './report.js';
import { cpuDelta, sampleCpu, type CpuSample } from './proc.js';
import { deltaOf, sum, sumBy, type Metrics } from './prom.js';
import { ProxyProcess, stopAllProxies } from './proxy-process.js';
import { bytesText, fmt, latencyStats, prng, round, sleep, type LatencyStats } from './stats.js';
import { Inspector } from './inspector.js';
import { freePort } from '../test/cluster/processes.js';
import { clock, SENT_ANNOTATION, type ClientsRequest, type CountsReply, type Envelope, type OpenReply, type ReplyEnvelope, type ReportReply, type WatchSpec } from './watch-clients.js';

const log = (msg: string) => process.stderr.write(`[bench:watch ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- the clients' process

class ClientsProcess {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 1;
  #exited: Promise<void>;

  constructor() {
    const file = fileURLToPath(new URL('./watch-clients.js', import.meta.url));
    this.#child = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    this.#child.on('message', (m: unknown) => {
      const r = m as ReplyEnvelope;
      const p = this.#pending.get(r.n);
      if (!p) return;
      this.#pending.delete(r.n);
      if (r.ok) p.resolve(r.reply);
      else p.reject(new Error(`watch clients: ${r.error}`));
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`the watch clients' process exited (${code ?? signal})`));
      this.#pending.clear();
      resolve();
    }));
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  call<T>(req: ClientsRequest): Promise<T> {
    const n = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(n, { resolve: (v) => resolve(v as T), reject });
      this.#child.send({ n, req } satisfies Envelope);
    });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.disconnect();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- results

type Side = 'direct' | 'proxy';

interface ProxyMemory {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly externalBytes: number;
}

interface PhaseResult {
  readonly side: Side;
  readonly watchers: number;
  readonly watchersPerNode: { readonly min: number; readonly max: number };
  readonly watchedNodes: number;
  readonly listResourceVersion: string;
  /** CPU seconds per second of each process over the settle window before the watchers open. */
  readonly idleCpuPerSecond: Readonly<Record<string, number>>;
  readonly open: {
    readonly seconds: number;
    readonly opened: number;
    readonly failures: Readonly<Record<string, number>>;
    readonly firstFailure?: string;
    readonly headers: LatencyStats;
    readonly cpuSeconds: Readonly<Record<string, number>>;
  };
  readonly churn: {
    readonly seconds: number;
    readonly targetPerSecond: number;
    readonly patches: number;
    readonly patchErrors: number;
    readonly firstPatchError?: string;
    readonly skipped: number;
    readonly achievedPerSecond: number;
    readonly patchLatency: LatencyStats;
    /** From the churn's start until every expected event arrived (or the drain timed out). */
    readonly windowSeconds: number;
    readonly drainSeconds: number;
    readonly cpuSeconds: Readonly<Record<string, number>>;
  };
  readonly events: {
    readonly expected: number;
    readonly received: number;
    readonly missed: number;
    readonly watchersWithMisses: number;
    readonly duplicates: number;
    readonly unexpected: number;
    readonly bookmarks: number;
    readonly otherEvents: Readonly<Record<string, number>>;
    readonly firstOther?: string;
    readonly streamsEnded: Readonly<Record<string, number>>;
    readonly firstEnded?: string;
    readonly wireBytes: number;
  };
  readonly delivery: LatencyStats;
  readonly proxy?: {
    readonly memoryBefore: ProxyMemory;
    readonly memoryAfterOpen: ProxyMemory;
    readonly memoryAfterChurn: ProxyMemory;
    readonly rssPerWatcherBytes: number;
    readonly heapPerWatcherBytes: number;
    readonly externalPerWatcherBytes: number;
    readonly watchesServedFromCache: number;
    readonly watchFallbacks: Readonly<Record<string, number>>;
    readonly watchersAfterOpen: number;
    readonly watchersClosed: Readonly<Record<string, number>>;
    /** After the clients closed their connections: seconds until the proxy's watchers gauge read 0 (NaN: not within 15 s), and closures by reason. */
    readonly watchersGoneSeconds: number;
    readonly watchersLeft: number;
    readonly closedAtEnd: Readonly<Record<string, number>>;
    readonly memorySampling: string;
    readonly linesQueued: number;
    readonly upstreamWatchRestarts: Readonly<Record<string, number>>;
    readonly relists: Readonly<Record<string, number>>;
  };
}

interface WatchBenchResult {
  readonly date: string;
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly scale: string;
  readonly options: WatchBenchOptions;
  readonly machine: Readonly<Record<string, unknown>> & { readonly cores: number; readonly cpuModel: string; readonly memoryBytes: number; readonly os: string; readonly node: string; readonly kubernetes: string; readonly loadAverageAtStart: readonly number[] };
  readonly population: { readonly seconds: number; readonly podsPerSecond: number };
  readonly proxy: { readonly readySeconds: number } | undefined;
  /** The same churn with no watcher open (neither side): what the patches alone cost. */
  readonly baseline: BaselineResult | undefined;
  readonly phases: readonly PhaseResult[];
  readonly runSeconds: number;
}

// ---------------------------------------------------------------- helpers

const roundAll = (r: Readonly<Record<string, number>>, digits = 3): Record<string, number> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, digits)]));

async function proxyMemory(proxy: ProxyProcess): Promise<ProxyMemory> {
  const m = await proxy.metrics();
  return { rssBytes: sum(m, 'process_resident_memory_bytes'), heapUsedBytes: sum(m, 'nodejs_heap_size_used_bytes'), externalBytes: sum(m, 'nodejs_external_memory_bytes') };
}

/**
 * Samples once a second for `seconds` and keeps the lowest of each (no forced GC is possible from
 * outside: the lowest is closest to what is live after a collection).
 */
async function settledMemory(px: ProxyHandle, seconds: number): Promise<ProxyMemory> {
  const samples: ProxyMemory[] = [await proxyMemory(px.proxy)];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await sleep(Math.min(1000, Math.max(0, end - performance.now())));
    samples.push(await proxyMemory(px.proxy));
  }
  // With the proxy's inspector: a full collection, then one sample (the live heap, exactly).
  if (px.inspector) {
    await px.inspector.collectGarbage();
    return proxyMemory(px.proxy);
  }
  const min = (f: (m: ProxyMemory) => number) => Math.min(...samples.map(f));
  return { rssBytes: min((m) => m.rssBytes), heapUsedBytes: min((m) => m.heapUsedBytes), externalBytes: min((m) => m.externalBytes) };
}

/** The proxy under test, with its inspector (for forced collections) and a client for its LISTs. */
interface ProxyHandle {
  readonly proxy: ProxyProcess;
  readonly inspector: Inspector | undefined;
  readonly client: Client;
}

/** Starts the proxy with its inspector on a loopback port (NODE_OPTIONS, for this spawn only). */
async function startProxy(cluster: TestCluster, logFile: string, args: readonly string[], ca: Buffer, token: string): Promise<ProxyHandle> {
  const port = await freePort();
  const saved = process.env['NODE_OPTIONS'];
  process.env['NODE_OPTIONS'] = `${saved ?? ''} --inspect=127.0.0.1:${port}`.trim();
  let proxy: ProxyProcess;
  try {
    proxy = await ProxyProcess.start(cluster, logFile, args);
  } finally {
    if (saved === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = saved;
  }
  const inspector = await Inspector.connect(port);
  if (!inspector) log('  (no inspector connection to the proxy: memory is the lowest of the samples, without a forced collection)');
  return { proxy, inspector, client: new Client('proxy', proxy.url, { ca, token, connections: 4 }) };
}

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

/** Nodes that have watchers and pods: watcher i watches node i mod nodes; pod i lives on node i mod nodes. */
function patchTargets(o: WatchBenchOptions, watchers: number): { nodes: number; plan: (rand: () => number) => number } {
  const nodes = Math.min(watchers, o.nodes, o.pods);
  return {
    nodes,
    plan: (rand) => {
      const n = Math.floor(rand() * nodes);
      const onNode = Math.floor((o.pods - 1 - n) / o.nodes) + 1;
      return n + o.nodes * Math.floor(rand() * onNode);
    },
  };
}

// ---------------------------------------------------------------- churn

interface ChurnResult {
  readonly seconds: number;
  /** Per patch (index = sequence number within the phase): the pod index, and whether it succeeded. */
  readonly pods: readonly number[];
  readonly ok: readonly boolean[];
  readonly patchErrors: number;
  readonly firstPatchError?: string;
  readonly skipped: number;
  readonly latenciesMs: readonly number[];
}

async function churn(o: WatchBenchOptions, layout: Layout, direct: Client, plan: readonly number[], seqBase: number): Promise<ChurnResult> {
  const interval = 1000 / o.updatesPerSecond;
  const started = performance.now();
  const deadline = started + o.churnSeconds * 1000;
  const inflight = new Set<Promise<void>>();
  const pods: number[] = [];
  const ok: boolean[] = [];
  const latenciesMs: number[] = [];
  let patchErrors = 0;
  let firstPatchError: string | undefined;
  let skipped = 0;
  for (let k = 0; k < plan.length; k++) {
    const due = started + k * interval;
    if (due >= deadline) break;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const pod = plan[k] ?? 0;
    pods.push(pod);
    ok.push(false);
    if (inflight.size >= 256) {
      skipped++;
      continue;
    }
    const ref = podRef(pod, layout);
    const seq = seqBase + k;
    const body = JSON.stringify({ metadata: { annotations: { [SENT_ANNOTATION]: `${seq}:${clock().toFixed(3)}` } } });
    const p: Promise<void> = direct.request('PATCH', `/api/v1/namespaces/${ref.namespace}/pods/${ref.name}`, { body, contentType: 'application/merge-patch+json' }).then(
      (r) => {
        latenciesMs.push(r.ms);
        if (r.status === 200) ok[k] = true;
        else {
          patchErrors++;
          firstPatchError ??= `${r.status} ${r.body?.toString('utf8').slice(0, 300) ?? ''}`;
        }
      },
      (err: unknown) => {
        patchErrors++;
        firstPatchError ??= String(err);
      },
    ).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all([...inflight]);
  const r: ChurnResult = { seconds: (performance.now() - started) / 1000, pods, ok, patchErrors, skipped, latenciesMs };
  return firstPatchError ? { ...r, firstPatchError } : r;
}

// ---------------------------------------------------------------- baseline: the churn alone

interface BaselineResult {
  readonly seconds: number;
  readonly patches: number;
  readonly patchErrors: number;
  readonly achievedPerSecond: number;
  readonly patchLatency: LatencyStats;
  readonly cpuSeconds: Readonly<Record<string, number>>;
}

async function baselineChurn(env: Env): Promise<BaselineResult> {
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

// ---------------------------------------------------------------- one phase

interface Env {
  readonly o: WatchBenchOptions;
  readonly layout: Layout;
  readonly ca: Buffer;
  readonly token: string;
  readonly direct: Client;
  readonly clients: ClientsProcess;
  readonly basePids: Readonly<Record<string, number>>;
}

async function phase(env: Env, side: Side, watchers: number, index: number, px: ProxyHandle | undefined): Promise<PhaseResult> {
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
  const perNode = (n: number) => (n < watchers % o.nodes ? 1 : 0) + Math.floor(watchers / o.nodes);
  const okPatchesOnNode = new Map<number, number>();
  let expected = 0;
  ch.pods.forEach((pod, k) => {
    if (!ch.ok[k]) return;
    const n = pod % o.nodes;
    okPatchesOnNode.set(n, (okPatchesOnNode.get(n) ?? 0) + 1);
    expected += perNode(n);
  });
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
  let received = 0;
  let duplicates = 0;
  let unexpected = 0;
  let watchersWithMisses = 0;
  const latencies: number[] = [];
  const byId = new Map(report.watchers.map((w) => [w.id, w]));
  for (let id = 0; id < watchers; id++) {
    const w = byId.get(id);
    const node = id % o.nodes;
    const want = okPatchesOnNode.get(node) ?? 0;
    let got = 0;
    if (w) {
      const seen = new Set<number>();
      w.seqs.forEach((seq, j) => {
        const k = seq - seqBase;
        const pod = ch.pods[k];
        if (k < 0 || pod === undefined || !ch.ok[k] || pod % o.nodes !== node) {
          unexpected++;
          return;
        }
        if (seen.has(seq)) {
          duplicates++;
          return;
        }
        seen.add(seq);
        got++;
        latencies.push(w.latenciesMs[j] ?? Number.NaN);
      });
    }
    received += got;
    if (got < want) watchersWithMisses++;
  }
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

// ---------------------------------------------------------------- output


function durationText(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const row = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
const kib = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : `${(n / 1024).toFixed(1)} KiB`);
const cpu = (r: Readonly<Record<string, number>>, k: string) => fmt(r[k], 2);
const via = (s: Side) => (s === 'direct' ? 'direct' : 'proxy');
const recordText = (r: Readonly<Record<string, number>>) => (Object.keys(r).length ? Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ') : '–');

function markdown(r: WatchBenchResult): string {
  const o = r.options;
  const L: string[] = [];
  L.push(`### ${o.nodes} nodes, ${o.pods} pods, ${o.watchers.join(' and ')} watchers — ${r.date}`, '');
  L.push('```sh', r.command, '```', '');
  L.push(`Proxy flags: ${o.proxyArgs.length ? o.proxyArgs.join(' ') : 'defaults (cache on)'}.`);
  L.push(`Proxy source: commit ${r.source.commit}${r.source.modified.length ? ` plus uncommitted changes in ${r.source.modified.length} file(s) of proxy/, cache/, indexes/ (${r.source.modified.map((m) => m.replace(/^\S+\s+/, '')).join(', ')})` : ''}.`);
  L.push(`Machine: ${r.machine.cores} × ${r.machine.cpuModel}, ${bytesText(r.machine.memoryBytes)} RAM, ${r.machine.os}; Node ${r.machine.node}; Kubernetes ${r.machine.kubernetes} ` +
    `(etcd, the apiserver, the proxy, the watch clients and the patcher share these cores; load average at start ${r.machine.loadAverageAtStart.join(' ')}).`);
  L.push(`Run time ${durationText(r.runSeconds)}. Population: ${o.pods} pods over ${o.nodes} nodes and ${o.namespaces} namespaces in ${r.population.seconds} s. ` +
    `Each watch: \`GET /api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName=<node>&resourceVersion=<RV of a LIST>&timeoutSeconds=${o.watchTimeoutSeconds}&watch=true\`, ` +
    `one per HTTP/1.1 TLS connection, ${o.openConcurrency} opened at a time; watcher i watches node i mod ${o.nodes}. ` +
    `Churn: ${o.updatesPerSecond} annotation patches/s for ${o.churnSeconds} s direct to the apiserver, on pods of watched nodes (the same sequence for both sides of a watcher count). ` +
    `Phase order: ${r.phases.map((p) => `${p.watchers} ${via(p.side)}`).join(', ')}; one proxy process serves all proxy phases` +
    (r.proxy ? ` (ready ${r.proxy.readySeconds} s after start).` : '.'), '');

  L.push('#### Delivery, cost and memory', '');
  const sampling = r.phases.find((p) => p.proxy)?.proxy?.memorySampling ?? 'lowest of once-a-second samples over the settle window';
  L.push('Latency: arrival at the watch client − the patch\'s send time (in its annotation; it includes the patch\'s own write latency), every expected event. ' +
    'Missed: expected events (every watcher of a patched pod\'s node, for every patch that succeeded) that did not arrive by the end of the drain. ' +
    'CPU: utime+stime from /proc over the churn window (churn start until every expected event arrived); "above baseline" subtracts the same churn with no watcher open, scaled to the window. ' +
    `Memory per watcher: the proxy's /metrics (${sampling}) after opening − before, ÷ watchers.`, '');
  const b = r.baseline;
  const baselineRate = b ? (b.cpuSeconds['apiserver'] ?? Number.NaN) / b.seconds : Number.NaN;
  L.push(row(['watchers', 'via', 'open all (s)', 'opens/s', 'open p99 ms', 'failed opens', 'events expected', 'received', 'missed', 'latency p50 ms', 'p99 ms', 'max ms', 'apiserver CPU s (churn)', 'above baseline', 'proxy CPU s (churn)', 'proxy RSS / watcher', 'proxy heap / watcher']));
  L.push(row(['---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  if (b) L.push(row(['0', 'none (baseline)', '', '', '', '', '', '', '', '', '', '', `${cpu(b.cpuSeconds, 'apiserver')} / ${b.seconds} s`, '', '', '', '']));
  for (const p of r.phases) {
    const failed = p.watchers - p.open.opened;
    L.push(row([String(p.watchers), via(p.side), fmt(p.open.seconds, 2), fmt(p.open.opened / p.open.seconds, 0), fmt(p.open.headers.p99Ms), failed ? `**${failed}**` : '0',
      String(p.events.expected), String(p.events.received), p.events.missed ? `**${p.events.missed}**` : '0',
      fmt(p.delivery.p50Ms), fmt(p.delivery.p99Ms), fmt(p.delivery.maxMs),
      `${cpu(p.churn.cpuSeconds, 'apiserver')} / ${p.churn.windowSeconds} s`, fmt((p.churn.cpuSeconds['apiserver'] ?? Number.NaN) - baselineRate * p.churn.windowSeconds, 2),
      p.side === 'proxy' ? cpu(p.churn.cpuSeconds, 'proxy') : '–',
      p.proxy ? kib(p.proxy.rssPerWatcherBytes) : '–', p.proxy ? kib(p.proxy.heapPerWatcherBytes) : '–']));
  }
  L.push('');
  L.push('#### Opening, idle and the patches', '');
  L.push('CPU seconds while the watchers opened; idle CPU per second over the settle window before opening (with the proxy running in proxy phases, its cache\'s own watches and bookmark probes included); the patches as sent and answered.', '');
  L.push(row(['watchers', 'via', 'apiserver CPU s (open)', 'proxy CPU s (open)', 'clients CPU s (open)', 'open p50 ms', 'apiserver idle CPU s/s', 'proxy idle CPU s/s', 'patches ok / sent', 'skipped', 'achieved /s', 'patch p50 ms', 'patch p99 ms', 'etcd CPU s (churn)', 'clients CPU s (churn)', 'drain s', 'bookmarks', 'other events', 'streams ended']));
  L.push(row(['---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---', '---']));
  if (b) L.push(row(['0', 'none (baseline)', '', '', '', '', '', '', `${b.patches - b.patchErrors} / ${b.patches}`, '', fmt(b.achievedPerSecond, 1), fmt(b.patchLatency.p50Ms), fmt(b.patchLatency.p99Ms), cpu(b.cpuSeconds, 'etcd'), '', '', '', '', '']));
  for (const p of r.phases) {
    L.push(row([String(p.watchers), via(p.side), cpu(p.open.cpuSeconds, 'apiserver'), p.side === 'proxy' ? cpu(p.open.cpuSeconds, 'proxy') : '–', cpu(p.open.cpuSeconds, 'clients'), fmt(p.open.headers.p50Ms),
      fmt(p.idleCpuPerSecond['apiserver'], 3), p.side === 'proxy' ? fmt(p.idleCpuPerSecond['proxy'], 3) : '–',
      `${p.churn.patches - p.churn.patchErrors} / ${p.churn.patches}`, String(p.churn.skipped), fmt(p.churn.achievedPerSecond, 1), fmt(p.churn.patchLatency.p50Ms), fmt(p.churn.patchLatency.p99Ms),
      cpu(p.churn.cpuSeconds, 'etcd'), cpu(p.churn.cpuSeconds, 'clients'), fmt(p.churn.drainSeconds, 2), String(p.events.bookmarks), recordText(p.events.otherEvents), recordText(p.events.streamsEnded)]));
  }
  const proxied = r.phases.filter((p) => p.proxy);
  if (proxied.length) {
    L.push('');
    L.push('#### The proxy', '');
    L.push(`Memory from its /metrics before and after opening (${sampling}) and once right after the churn. Watches served from its cache and forwarded (fallback reasons); its watchers gauge after opening; watchers it closed during the phase, by reason (e.g. slow); lines queued to watchers during the churn; after the clients closed their connections, how long until its watchers gauge read 0, and the closures by reason.`, '');
    L.push(row(['watchers', 'RSS before → after open → after churn', 'heap used', 'external', 'RSS / watcher', 'heap / watcher', 'external / watcher', 'served from cache', 'fallbacks', 'watchers after open', 'closed during the phase', 'lines queued', 'upstream watch restarts', 'gauge at 0 after close (s)', 'closed at the end']));
    L.push(row(['---:', '---', '---', '---', '---:', '---:', '---:', '---:', '---', '---:', '---', '---:', '---', '---:', '---']));
    for (const p of proxied) {
      const x = p.proxy;
      if (!x) continue;
      const tri = (f: (m: ProxyMemory) => number) => `${bytesText(f(x.memoryBefore))} → ${bytesText(f(x.memoryAfterOpen))} → ${bytesText(f(x.memoryAfterChurn))}`;
      L.push(row([String(p.watchers), tri((m) => m.rssBytes), tri((m) => m.heapUsedBytes), tri((m) => m.externalBytes), kib(x.rssPerWatcherBytes), kib(x.heapPerWatcherBytes), kib(x.externalPerWatcherBytes),
        String(x.watchesServedFromCache), recordText(x.watchFallbacks), String(x.watchersAfterOpen), recordText(x.watchersClosed), String(x.linesQueued), recordText(x.upstreamWatchRestarts),
        Number.isFinite(x.watchersGoneSeconds) ? fmt(x.watchersGoneSeconds, 2) : `**${x.watchersLeft} left after 15 s**`, recordText(x.closedAtEnd)]));
    }
  }
  const notes = r.phases.flatMap((p) => [
    p.open.firstFailure ? `- ${p.watchers} ${via(p.side)}: first failed open: ${p.open.firstFailure.replace(/\n/g, ' ')}` : '',
    p.events.firstEnded ? `- ${p.watchers} ${via(p.side)}: first stream that ended early: ${p.events.firstEnded.replace(/\n/g, ' ')}` : '',
    p.churn.firstPatchError ? `- ${p.watchers} ${via(p.side)}: first failed patch: ${p.churn.firstPatchError.replace(/\n/g, ' ')}` : '',
    p.events.duplicates || p.events.unexpected ? `- ${p.watchers} ${via(p.side)}: ${p.events.duplicates} duplicate and ${p.events.unexpected} unexpected events` : '',
  ]).filter((s) => s !== '');
  if (notes.length) L.push('', ...notes);
  return L.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  let parsed: WatchBenchOptions | 'help';
  try {
    parsed = parseWatchArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(WATCH_USAGE);
    return 0;
  }
  const o = parsed;
  const runStarted = performance.now();
  const date = new Date();
  const root = repoRoot();
  const layout: Layout = { nodes: o.nodes, pods: o.pods, namespaces: o.namespaces, configMapsPerNamespace: 0 };
  const loadAtStart = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'kcp-bench-watch-'));
  log(`scale ${watchScaleLabel(o)}; working directory ${dir}`);

  let cluster: TestCluster | undefined;
  let proxy: ProxyProcess | undefined;
  let clients: ClientsProcess | undefined;
  const httpClients: Client[] = [];
  let interrupted = false;
  let failed = false;
  const cleanup = async () => {
    await clients?.stop().catch(() => undefined);
    await Promise.allSettled(httpClients.map((c) => c.close()));
    await proxy?.stop().catch(() => undefined);
    await stopAllProxies();
    await cluster?.down().catch(() => undefined);
    if (!o.keepCluster && !failed) rmSync(dir, { recursive: true, force: true });
    else log(`cluster directory kept (logs, etcd data): ${dir}`);
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: stopping the clients, the proxy and the cluster');
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
    const direct = new Client('direct', apiserver.url, { ca, token, connections: Math.max(32, o.populateConcurrency) });
    httpClients.push(direct);

    log(`populating: ${o.namespaces} namespaces, ${o.nodes} nodes, ${o.pods} pods`);
    const pop = await populate(layout, direct, o.populateConcurrency, log);
    log(`populated in ${pop.seconds.toFixed(1)} s (pods ${(o.pods / pop.podSeconds).toFixed(0)}/s)`);

    clients = new ClientsProcess();
    const env: Env = { o, layout, ca, token, direct, clients, basePids: { apiserver: apiserver.pid, etcd: info.etcd.pid } };

    // Direct for the first count, then every count through one proxy, then direct for the others
    // in reverse (for two counts: direct, proxy, proxy, direct), so drift weighs on both sides alike.
    const order: { side: Side; watchers: number }[] = [
      { side: 'direct', watchers: o.watchers[0] ?? 1 },
      ...o.watchers.map((w) => ({ side: 'proxy' as const, watchers: w })),
      ...o.watchers.slice(1).reverse().map((w) => ({ side: 'direct' as const, watchers: w })),
    ];
    const baseline = o.baseline ? await baselineChurn(env) : undefined;
    const phases: PhaseResult[] = [];
    let proxyReady: number | undefined;
    let px: ProxyHandle | undefined;
    for (const [i, step] of order.entries()) {
      if (step.side === 'proxy' && !px) {
        log(`starting the proxy (cache on${o.proxyArgs.length ? `, ${o.proxyArgs.join(' ')}` : ', defaults'}) and waiting for /readyz`);
        px = await startProxy(cluster, join(dir, 'proxy.log'), o.proxyArgs, ca, token);
        proxy = px.proxy;
        httpClients.push(px.client);
        proxyReady = px.proxy.readySeconds;
        log(`proxy ready in ${px.proxy.readySeconds.toFixed(1)} s`);
      }
      if (step.side === 'direct' && px) {
        log('stopping the proxy (direct phases run without it)');
        px.inspector?.close();
        await px.client.close();
        await px.proxy.stop();
        px = undefined;
        proxy = undefined;
        await sleep(2000);
      }
      phases.push(await phase(env, step.side, step.watchers, i, px));
    }
    px?.inspector?.close();

    const runSeconds = (performance.now() - runStarted) / 1000;
    const cpu0 = cpus()[0];
    const result: WatchBenchResult = {
      date: date.toISOString(),
      command: commandLine('bench:watch', 'watch.js'),
      source: sourceInfo(root),
      scale: watchScaleLabel(o),
      options: o,
      machine: {
        cores: cpus().length,
        cpuModel: cpu0?.model.trim() ?? 'unknown',
        memoryBytes: totalmem(),
        os: `${osType()} ${release()}`,
        node: process.version,
        kubernetes: info.kubernetesVersion,
        loadAverageAtStart: loadAtStart.map((v) => round(v, 2)),
      },
      population: { seconds: round(pop.seconds, 1), podsPerSecond: round(o.pods / pop.podSeconds, 1) },
      proxy: proxyReady !== undefined ? { readySeconds: round(proxyReady, 2) } : undefined,
      baseline,
      phases,
      runSeconds: round(runSeconds, 1),
    };
    const md = markdown(result);
    const resultsDir = join(root, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const stamp = date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    const file = o.out ?? join(resultsDir, `watch-${stamp}-${watchScaleLabel(o)}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    if (o.writeReadme) updateReadme(join(root, 'bench', 'README.md'), 'bench-watch-results', 'Latest watch results', md);
    process.stdout.write(`${md}\n`);
    log(`results: ${file}${o.writeReadme ? ' and bench/README.md' : ''}; run time ${runSeconds.toFixed(0)} s`);
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
