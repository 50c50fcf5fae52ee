// The benchmark's result document, the targets it is judged against, and its Markdown rendering.
import type { LatencyStats } from './stats.js';
import { bytesText, fmt } from './stats.js';
import type { HistogramDelta } from './prom.js';

export type Target = 'direct' | 'proxy';

export interface SideResult {
  readonly requests: number;
  readonly errors: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly firstError?: string;
  readonly latency: LatencyStats;
  readonly wallSeconds: number;
  readonly requestsPerSecond: number;
  /** Mean response size on the wire (gzip when the server compressed it) and how many were gzipped. */
  readonly meanWireBytes: number;
  readonly gzipped: number;
  /** CPU seconds used during the measured rounds, per process (apiserver, etcd, proxy, bench). */
  readonly cpuSeconds: Readonly<Record<string, number>>;
  /** The same per 1,000 requests. */
  readonly cpuSecondsPer1000: Readonly<Record<string, number>>;
  /** Proxy only: reads its cache served, and fallbacks by reason (metric deltas). */
  readonly cacheServed?: number;
  readonly cacheFallbacks?: Readonly<Record<string, number>>;
  /** Proxy only: consistent reads' freshness waits (histogram delta): how many waited, > 100 ms, timed out. */
  readonly freshness?: { readonly reads: number; readonly waited: number; readonly over100ms: number; readonly timeouts: number; readonly waitSeconds: number };
}

export interface CaseResult {
  readonly id: string;
  readonly title: string;
  readonly kind: 'nodeName' | 'namespace' | 'label' | 'full' | 'get';
  readonly resourceVersion: 'unset' | '0';
  readonly indexed: boolean;
  readonly concurrency: number;
  /** One answer each, decoded: item counts (lists) must match. */
  readonly check: { readonly direct: string; readonly proxy: string; readonly match: boolean };
  readonly direct: SideResult;
  readonly proxy: SideResult;
}

export interface MemoryResult {
  readonly when: string;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly externalBytes: number;
  readonly cacheBytes: Readonly<Record<string, number>>;
  readonly cacheObjects: Readonly<Record<string, number>>;
  readonly totalCacheBytes: number;
  readonly totalObjects: number;
}

export interface MixedResource {
  /** LISTs of the resource the apiserver counted during the phase (apiserver_request_total). */
  readonly apiserverLists?: number;
  /**
   * Upstream requests per cache-served read: the apiserver's LISTs of the resource less the reads
   * forwarded (and the direct reader's), ÷ reads served from the cache.
   */
  readonly upstreamPerServed?: number;
  /** Shared freshness probes sent (kube_cache_proxy_freshness_probes_total; local authorization mode). */
  readonly sharedProbes?: number;
  readonly reads: number;
  readonly served: number;
  readonly fallbacks: Readonly<Record<string, number>>;
  readonly hitRatio: number;
  readonly freshness: HistogramDelta & { readonly timeouts: number; readonly p50Seconds: number; readonly p99Seconds: number; readonly waited: number };
}

export interface MixedResult {
  readonly seconds: number;
  readonly writesPerSecondTarget: number;
  readonly writes: number;
  readonly writeErrors: number;
  readonly writesSkipped: number;
  readonly writeLatency: LatencyStats;
  readonly reads: Readonly<Record<string, { readonly errors: number; readonly latency: LatencyStats }>>;
  readonly readErrorsFirst?: string;
  readonly resources: Readonly<Record<string, MixedResource>>;
  readonly cpuSeconds: Readonly<Record<string, number>>;
}

export interface TargetCheck {
  readonly target: string;
  readonly detail: string;
  readonly measured: string;
  readonly goal: string;
  readonly pass: boolean;
}

export interface BenchResult {
  readonly date: string;
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly scale: string;
  readonly options: Readonly<Record<string, unknown>>;
  readonly machine: {
    readonly cores: number;
    readonly cpuModel: string;
    readonly memoryBytes: number;
    readonly os: string;
    readonly node: string;
    readonly kubernetes: string;
    readonly loadAverageAtStart: readonly number[];
  };
  readonly population: {
    readonly namespaces: number;
    readonly nodes: number;
    readonly configMaps: number;
    readonly pods: number;
    readonly seconds: number;
    readonly podsPerSecond: number;
    readonly meanPodBytes: number;
    readonly apiserverCpuSeconds: number;
  };
  readonly proxy: {
    readonly readySeconds: number;
    readonly baseline: { readonly rssBytes: number; readonly heapUsedBytes: number; readonly externalBytes: number } | undefined;
    readonly idleCpuPerSecond: Readonly<Record<string, number>>;
  };
  readonly memory: readonly MemoryResult[];
  readonly cases: readonly CaseResult[];
  readonly mixed: MixedResult | undefined;
  readonly targets: readonly TargetCheck[];
  readonly runSeconds: number;
}

const rvText = (c: CaseResult) => (c.resourceVersion === '0' ? '0' : 'unset');

/** The mixed phase's readers of the quiet resource (bench/run.ts names them). */
export const QUIET_READER = 'one node by metadata.name (quiet resource), own reader';
export const QUIET_DIRECT = 'the same, direct to the apiserver';

function mixedTargets(mx: MixedResult): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const name of ['pods', 'configmaps']) {
    const m = mx.resources[name];
    if (!m) continue;
    if (m.upstreamPerServed !== undefined) {
      out.push({
        target: 'upstream requests per cache-served consistent read ≤ 0.05',
        detail: `${name}, mixed phase (apiserver LISTs − forwarded) ÷ served`,
        measured: fmt(m.upstreamPerServed, 3),
        goal: '≤ 0.05',
        pass: m.upstreamPerServed <= 0.05,
      });
    }
    out.push({ target: 'busy resource hit ratio ≥ 99%', detail: `${name}, consistent LISTs under writes`, measured: `${fmt(100 * m.hitRatio, 1)}%`, goal: '≥ 99%', pass: m.hitRatio >= 0.99 });
  }
  const q = mx.reads[QUIET_READER];
  const d = mx.reads[QUIET_DIRECT];
  if (q && d) {
    out.push({
      target: 'quiet-resource consistent read p50 ≤ direct + 5 ms',
      detail: 'one node by metadata.name while pods and ConfigMaps are written',
      measured: `${fmt(q.latency.p50Ms)} ms vs ${fmt(d.latency.p50Ms)} ms direct (+${fmt(q.latency.p50Ms - d.latency.p50Ms)} ms)`,
      goal: '≤ +5 ms',
      pass: q.errors === 0 && q.latency.p50Ms <= d.latency.p50Ms + 5,
    });
  }
  return out;
}

export function evaluateTargets(cases: readonly CaseResult[], mem: MemoryResult | undefined, mx?: MixedResult): TargetCheck[] {
  const out: TargetCheck[] = mx ? mixedTargets(mx) : [];
  for (const c of cases.filter((x) => x.indexed)) {
    out.push({
      target: 'indexed LIST p99 through the proxy ≤ 5 ms',
      detail: `${c.title}, RV ${rvText(c)}`,
      measured: `${fmt(c.proxy.latency.p99Ms)} ms`,
      goal: '≤ 5 ms',
      pass: c.proxy.errors === 0 && c.proxy.latency.p99Ms <= 5,
    });
  }
  for (const c of cases.filter((x) => x.indexed)) {
    const d = c.direct.cpuSecondsPer1000['apiserver'] ?? Number.NaN;
    const p = c.proxy.cpuSecondsPer1000['apiserver'] ?? Number.NaN;
    out.push({
      target: 'apiserver CPU per 1,000 indexed LISTs through the proxy ≤ 1/3 of direct',
      detail: `${c.title}, RV ${rvText(c)}`,
      measured: `${fmt(p, 3)} s vs ${fmt(d, 3)} s direct (${fmt(p / d, 2)}×)`,
      goal: '≤ 0.33×',
      pass: c.proxy.errors === 0 && p <= d / 3,
    });
  }
  for (const c of cases.filter((x) => x.kind === 'full')) {
    const speedup = c.direct.latency.p50Ms / c.proxy.latency.p50Ms;
    out.push({
      target: 'full LIST of all pods ≥ 5× faster through the proxy',
      detail: `p50 latency, RV ${rvText(c)} (req/s ratio ${fmt(c.proxy.requestsPerSecond / c.direct.requestsPerSecond, 1)}×)`,
      measured: `${fmt(speedup, 1)}× (${fmt(c.direct.latency.p50Ms, 0)} → ${fmt(c.proxy.latency.p50Ms, 0)} ms)`,
      goal: '≥ 5×',
      pass: c.proxy.errors === 0 && speedup >= 5,
    });
  }
  if (mem) {
    const ratio = mem.rssBytes / mem.totalCacheBytes;
    out.push({
      target: 'proxy memory ≤ 1.5× the raw JSON bytes cached',
      detail: `RSS ${bytesText(mem.rssBytes)} / raw ${bytesText(mem.totalCacheBytes)} (${mem.when})`,
      measured: `${fmt(ratio, 2)}×`,
      goal: '≤ 1.5×',
      pass: ratio <= 1.5,
    });
  }
  return out;
}

function durationText(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${Math.round(s - m * 60)} s` : `${fmt(s, 1)} s`;
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

export function markdown(r: BenchResult): string {
  const L: string[] = [];
  const o = r.options;
  L.push(`### ${r.population.nodes} nodes, ${r.population.pods} pods, ${r.population.namespaces} namespaces — ${r.date}`);
  L.push('');
  L.push('```sh');
  L.push(r.command);
  L.push('```');
  L.push('');
  const proxyArgs = Array.isArray(o['proxyArgs']) ? (o['proxyArgs'] as unknown[]).map(String) : [];
  L.push(`Proxy flags: ${proxyArgs.length ? proxyArgs.map((a) => `\`${a}\``).join(' ') : 'defaults'} (cache on).`);
  L.push(`Proxy source: commit ${r.source.commit}${r.source.modified.length ? ` plus uncommitted changes in ${r.source.modified.length} file(s) of proxy/, cache/, indexes/ (${r.source.modified.map((m) => m.replace(/^\S+\s+/, '')).join(', ')})` : ''}.`);
  L.push(`Machine: ${r.machine.cores} × ${r.machine.cpuModel}, ${bytesText(r.machine.memoryBytes)} RAM, ${r.machine.os}; Node ${r.machine.node}; Kubernetes ${r.machine.kubernetes}` +
    ` (etcd, apiserver, proxy and the load generator share these cores; load average at start ${r.machine.loadAverageAtStart.map((v) => v.toFixed(2)).join(' ')}).`);
  L.push(`Run time ${durationText(r.runSeconds)}. Population: ${r.population.pods} pods (mean ${bytesText(r.population.meanPodBytes)} of JSON each as stored), ${r.population.nodes} Nodes, ` +
    `${r.population.configMaps} ConfigMaps in ${durationText(r.population.seconds)} (${fmt(r.population.podsPerSecond, 0)} pods/s). ` +
    `Proxy ready (cache synced) ${fmt(r.proxy.readySeconds, 1)} s after start. ` +
    `Idle CPU before the load: apiserver ${fmt(r.proxy.idleCpuPerSecond['apiserver'] ?? Number.NaN, 3)} s/s, etcd ${fmt(r.proxy.idleCpuPerSecond['etcd'] ?? Number.NaN, 3)} s/s, proxy ${fmt(r.proxy.idleCpuPerSecond['proxy'] ?? Number.NaN, 3)} s/s.`);
  L.push(`Load: ${String(o['requests'])} requests per case and side at concurrency ${String(o['concurrency'])}; full LIST ${String(o['fullRequests'])} per side at concurrency ${String(o['fullConcurrency'])}; ` +
    'order direct, proxy, proxy, direct (two halves each); every request has Accept: application/json and Accept-Encoding: gzip over HTTP/1.1 keep-alive.');
  L.push('');
  L.push('#### Targets');
  L.push('');
  L.push(row(['target', 'case', 'measured', 'goal', 'result']));
  L.push(row(['---', '---', '---', '---', '---']));
  for (const t of r.targets) L.push(row([t.target, t.detail, t.measured, t.goal, t.pass ? '**PASS**' : '**MISS**']));
  L.push('');
  L.push('#### Latency and cost per case');
  L.push('');
  L.push('CPU columns: CPU seconds (utime+stime from /proc, 10 ms ticks) per 1,000 requests during the measured rounds. "from cache": share of the proxy\'s requests its cache answered (metrics delta). ' +
    '"waited for freshness": consistent reads whose cache was behind the apiserver\'s resourceVersion after the probe and had to wait (of those, how many over 100 ms).');
  L.push('');
  L.push(row(['case', 'RV', 'via', 'p50 ms', 'p99 ms', 'req/s', 'apiserver CPU s/1k', 'etcd CPU s/1k', 'proxy CPU s/1k', 'wire KB/resp', 'items', 'from cache', 'waited for freshness (>100 ms)', 'errors']));
  L.push(row(['---', '---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  for (const c of r.cases) {
    for (const side of ['direct', 'proxy'] as const) {
      const s = c[side];
      const fromCache = side === 'proxy' && s.cacheServed !== undefined ? `${fmt((100 * s.cacheServed) / Math.max(1, s.requests), 0)}%` : '';
      const fb = side === 'proxy' && s.cacheFallbacks && Object.keys(s.cacheFallbacks).length > 0
        ? ` (fallback: ${Object.entries(s.cacheFallbacks).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
      L.push(row([
        side === 'direct' ? c.title : '',
        side === 'direct' ? rvText(c) : '',
        side,
        fmt(s.latency.p50Ms),
        fmt(s.latency.p99Ms),
        fmt(s.requestsPerSecond, 0),
        fmt(s.cpuSecondsPer1000['apiserver'], 3),
        fmt(s.cpuSecondsPer1000['etcd'], 3),
        fmt(s.cpuSecondsPer1000['proxy'], 3),
        fmt(s.meanWireBytes / 1024, 1),
        side === 'direct' ? c.check.direct : c.check.proxy + (c.check.match ? '' : ' ≠'),
        fromCache + fb,
        s.freshness && s.freshness.reads > 0 ? `${s.freshness.waited} (${s.freshness.over100ms})${s.freshness.timeouts ? `, ${s.freshness.timeouts} timed out` : ''}` : '',
        String(s.errors),
      ]));
    }
  }
  L.push('');
  L.push('#### Proxy memory');
  L.push('');
  L.push(row(['sampled', 'objects', 'raw JSON cached', 'RSS', 'RSS / raw', 'heap used', 'heap / raw', 'external (Buffers)', 'RSS per object', 'RSS − no-cache baseline, per object']));
  L.push(row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  for (const m of r.memory) {
    const base = r.proxy.baseline?.rssBytes ?? Number.NaN;
    L.push(row([
      m.when,
      String(m.totalObjects),
      bytesText(m.totalCacheBytes),
      bytesText(m.rssBytes),
      `${fmt(m.rssBytes / m.totalCacheBytes, 2)}×`,
      bytesText(m.heapUsedBytes),
      `${fmt(m.heapUsedBytes / m.totalCacheBytes, 2)}×`,
      bytesText(m.externalBytes),
      bytesText(Math.round(m.rssBytes / m.totalObjects)),
      bytesText(Math.round((m.rssBytes - base) / m.totalObjects)),
    ]));
  }
  if (r.proxy.baseline) L.push('', `No-cache baseline (same binary, \`--cache-resources none\`, idle): RSS ${bytesText(r.proxy.baseline.rssBytes)}, heap used ${bytesText(r.proxy.baseline.heapUsedBytes)}, external ${bytesText(r.proxy.baseline.externalBytes)}.`);
  const first = r.memory[0];
  if (first) {
    L.push('', 'Raw JSON per resource: ' + Object.entries(first.cacheBytes).map(([k, v]) => `${k} ${bytesText(v)} / ${first.cacheObjects[k] ?? 0} objects`).join('; ') + '.');
  }
  const mx = r.mixed;
  if (mx) {
    L.push('');
    L.push(`#### Consistent reads under writes (${fmt(mx.seconds, 0)} s, ${fmt(mx.writes / mx.seconds, 1)} writes/s achieved of ${mx.writesPerSecondTarget})`);
    L.push('');
    L.push('Writes go direct to the apiserver (pod label patches and ConfigMap data patches, alternating); consistent LISTs (resourceVersion unset) of pods and ConfigMaps go through the proxy, ' +
      'and one reader of its own lists one Node (a resource nobody writes here) through the proxy, another the same direct. Hit ratio = served / (served + fallback), from the proxy\'s metrics deltas.');
    L.push('');
    L.push('"upstream per served read": the apiserver\'s own count of LISTs of the resource during the phase (apiserver_request_total), less the reads the proxy forwarded and the direct reader\'s, ÷ reads served from the cache — the probes a served read costs the apiserver; "shared probes": the freshness probes shared by consistent reads (local authorization mode). ' +
      'Fallback reason "quiet": the resource was behind the read\'s resourceVersion with no event for --cache-quiet-after, forwarded at once instead of waiting for a bookmark.');
    L.push('');
    L.push(row(['resource', 'LISTs', 'served', 'fallback', 'hit ratio', 'fallback reasons', 'upstream per served read', 'shared probes', 'freshness waits', 'waited > 0.5 ms', 'wait p50', 'wait p99', 'timeouts']));
    L.push(row(['---', '---:', '---:', '---:', '---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
    for (const [name, m] of Object.entries(mx.resources)) {
      const fallbacks = Object.values(m.fallbacks).reduce((a, b) => a + b, 0);
      L.push(row([
        name, String(m.reads), String(m.served), String(fallbacks), `${fmt(100 * m.hitRatio, 1)}%`,
        Object.entries(m.fallbacks).map(([k, v]) => `${k} ${v}`).join(', ') || '–',
        m.upstreamPerServed === undefined ? '' : fmt(m.upstreamPerServed, 3), m.sharedProbes === undefined ? '' : String(m.sharedProbes),
        String(m.freshness.count), String(m.freshness.waited),
        `${fmt(m.freshness.p50Seconds * 1000, 2)} ms`, `${fmt(m.freshness.p99Seconds * 1000, 1)} ms`, String(m.freshness.timeouts),
      ]));
    }
    L.push('');
    L.push(row(['read through the proxy', 'count', 'p50 ms', 'p99 ms', 'errors']));
    L.push(row(['---', '---:', '---:', '---:', '---:']));
    for (const [k, v] of Object.entries(mx.reads)) L.push(row([k, String(v.latency.count), fmt(v.latency.p50Ms), fmt(v.latency.p99Ms), String(v.errors)]));
    L.push(row([`writes (direct)`, String(mx.writes), fmt(mx.writeLatency.p50Ms), fmt(mx.writeLatency.p99Ms), `${mx.writeErrors}${mx.writesSkipped ? `, ${mx.writesSkipped} skipped` : ''}`]));
    L.push('', 'Freshness-wait histogram (all consistent reads of the phase, per resource; cumulative counts per upper bound):', '');
    const les = [...new Set(Object.values(mx.resources).flatMap((m) => m.freshness.buckets.map((b) => b.le)))].sort((a, b) => a - b);
    L.push(row(['resource', ...les.map((le) => (Number.isFinite(le) ? `≤ ${le * 1000} ms` : 'all'))]));
    L.push(row(['---', ...les.map(() => '---:')]));
    for (const [name, m] of Object.entries(mx.resources)) {
      L.push(row([name, ...les.map((le) => String(m.freshness.buckets.find((b) => b.le === le)?.count ?? 0))]));
    }
  }
  L.push('');
  return L.join('\n');
}
