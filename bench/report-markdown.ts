// The Markdown rendering of a `npm run bench` result (stdout and bench/README.md's "Latest results"):
// the run, issue 9's targets judged for the judged mode with the other modes beside them, then per
// mode the cases, memory, mixed phase and CPU profile.
import { profileTable } from './cpu-profile.js';
import type { BenchResult, CaseResult, MixedResult, ModeResult, TargetCheck } from './results.js';
import { bytesText, fmt } from './stats.js';

function durationText(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${Math.round(s - m * 60)} s` : `${fmt(s, 1)} s`;
}

const row = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
const rvText = (c: CaseResult) => (c.resourceVersion === '0' ? '0' : 'unset');
const verdict = (t: TargetCheck | undefined) => (t ? (t.pass ? 'PASS' : 'MISS') : '');

function header(r: BenchResult, L: string[]): void {
  const o = r.options;
  L.push(`### ${r.population.nodes} nodes, ${r.population.pods} pods, ${r.population.namespaces} namespaces — ${r.date}`, '');
  L.push('```sh', r.command, '```', '');
  const extra = Array.isArray(o['proxyArgs']) ? (o['proxyArgs'] as unknown[]).map(String) : [];
  L.push(`Modes: ${r.modes.map((m) => `\`--authorization-mode ${m.mode}\``).join(', ')}, each a fresh proxy process (cache on${extra.length ? `, plus ${extra.map((a) => `\`${a}\``).join(' ')}` : ', other flags default'}); targets judged for \`${r.judgedMode}\`.`);
  L.push(`Proxy source: commit ${r.source.commit}${r.source.modified.length ? ` plus uncommitted changes in ${r.source.modified.length} file(s) of proxy/, cache/, indexes/, flowcontrol/ (${r.source.modified.map((m) => m.replace(/^\S+\s+/, '')).join(', ')})` : ''}.`);
  L.push(`Machine: ${r.machine.cores} × ${r.machine.cpuModel}, ${bytesText(r.machine.memoryBytes)} RAM, ${r.machine.os}; Node ${r.machine.node}; Kubernetes ${r.machine.kubernetes}` +
    ` (etcd, apiserver, proxy and the load generator share these cores; load average at start ${r.machine.loadAverageAtStart.map((v) => v.toFixed(2)).join(' ')}).`);
  const p = r.population;
  L.push(`Run time ${durationText(r.runSeconds)}. Population: ${p.pods} pods (mean ${bytesText(p.meanPodBytes)} of JSON each as listed), ${p.nodes} Nodes, ` +
    `${p.configMaps} ConfigMaps in ${durationText(p.seconds)} (${fmt(p.podsPerSecond, 0)} pods/s; apiserver CPU ${fmt(p.apiserverCpuSeconds, 1)} s).`);
  L.push(`Load: ${String(o['requests'])} requests per case and side at concurrency ${String(o['concurrency'])}; full LIST ${String(o['fullRequests'])} per side at concurrency ${String(o['fullConcurrency'])}; ` +
    'per mode, order direct, proxy, proxy, direct (two halves each); every request has Accept: application/json and Accept-Encoding: gzip over HTTP/1.1 keep-alive, as the admin user (one bearer token).');
  const profiled = r.modes.filter((m) => m.profile);
  L.push(profiled.length ? `CPU profiles (node --cpu-prof, 1 ms sampling; not committed): ${profiled.map((m) => `\`${m.profile?.file ?? ''}\``).join(', ')}.` : 'CPU profiles: none (run without `--cpu-prof`).');
  L.push('');
}

function targetsTable(r: BenchResult, L: string[]): void {
  const judged = r.modes.find((m) => m.mode === r.judgedMode) ?? r.modes[0];
  if (!judged) return;
  const others = r.modes.filter((m) => m !== judged);
  L.push(`#### Targets (issue 9), judged in \`${judged.mode}\` mode${others.length ? `; ${others.map((m) => `\`${m.mode}\``).join(', ')} for information` : ''}`, '');
  const passed = judged.targets.filter((t) => t.pass).length;
  L.push(`${passed} of ${judged.targets.length} checks pass in \`${judged.mode}\` mode${others.map((m) => `; ${m.targets.filter((t) => t.pass).length} of ${m.targets.length} in \`${m.mode}\``).join('')}.`, '');
  L.push(row(['figure', 'case', 'goal', `${judged.mode}`, 'result', ...others.map((m) => `${m.mode} (information)`)]));
  L.push(row(['---', '---', '---', '---:', '---', ...others.map(() => '---:')]));
  let figure = '';
  for (const t of judged.targets) {
    const cells = others.map((m) => {
      const o = m.targets.find((x) => x.id === t.id);
      return o ? `${o.measured} (${verdict(o)})` : '–';
    });
    L.push(row([t.figure === figure ? '' : t.figure, t.detail, t.goal, t.measured, `**${verdict(t)}**`, ...cells]));
    figure = t.figure;
  }
  L.push('');
}

function casesTable(m: ModeResult, L: string[]): void {
  L.push(`#### \`${m.mode}\` mode: latency and cost per case`, '');
  L.push(row(['case', 'RV', 'via', 'p50 ms', 'p99 ms', 'req/s', 'apiserver CPU s/1k', 'etcd CPU s/1k', 'proxy CPU s/1k', 'wire KB/resp', 'items', 'from cache', 'upstream per served read (reads + reviews − forwarded; shared probes)', 'waited for freshness (>100 ms)', 'errors']));
  L.push(row(['---', '---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  for (const c of m.cases) {
    for (const side of ['direct', 'proxy'] as const) {
      const s = c[side];
      const fromCache = side === 'proxy' && s.cacheServed !== undefined ? `${fmt((100 * s.cacheServed) / Math.max(1, s.requests), 0)}%` : '';
      const fb = side === 'proxy' && s.cacheFallbacks && Object.keys(s.cacheFallbacks).length > 0
        ? ` (fallback: ${Object.entries(s.cacheFallbacks).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
      const u = side === 'proxy' ? s.upstream : undefined;
      const reviews = u ? Object.values(u.reviews).reduce((a, b) => a + b, 0) : 0;
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
        u ? `${fmt(u.perServed, 3)} (${u.apiserverReads} + ${reviews} − ${u.forwarded}${u.sharedProbes ? `; ${u.sharedProbes}` : ''})` : '',
        s.freshness && s.freshness.reads > 0 ? `${s.freshness.waited} (${s.freshness.over100ms})${s.freshness.timeouts ? `, ${s.freshness.timeouts} timed out` : ''}` : '',
        String(s.errors),
      ]));
    }
  }
  L.push('');
}

function memoryTable(r: BenchResult, L: string[]): void {
  L.push('#### Memory', '');
  L.push(row(['mode', 'sampled', 'objects', 'raw JSON cached', 'RSS', 'RSS / raw', 'heap used', 'heap / raw', 'external (Buffers)', 'RSS − no-cache baseline, per object']));
  L.push(row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  const base = r.baseline?.rssBytes ?? Number.NaN;
  for (const m of r.modes) {
    for (const s of m.memory) {
      L.push(row([m.mode, s.when, String(s.totalObjects), bytesText(s.totalCacheBytes), bytesText(s.rssBytes), `${fmt(s.rssBytes / s.totalCacheBytes, 2)}×`,
        bytesText(s.heapUsedBytes), `${fmt(s.heapUsedBytes / s.totalCacheBytes, 2)}×`, bytesText(s.externalBytes), bytesText(Math.round((s.rssBytes - base) / s.totalObjects))]));
    }
  }
  if (r.baseline) L.push('', `No-cache baseline (same build, \`--cache-resources none\`, idle): RSS ${bytesText(r.baseline.rssBytes)}, heap used ${bytesText(r.baseline.heapUsedBytes)}, external ${bytesText(r.baseline.externalBytes)}.`);
  const a = r.population.apiserverRss;
  const e = r.population.etcdRss;
  const raw = r.modes[0]?.memory[0]?.totalCacheBytes ?? Number.NaN;
  L.push('', `Anchor — the apiserver's own RSS (VmRSS) for the same objects: ${bytesText(a.beforeBytes)} before the population, ${bytesText(a.afterBytes)} after it: ` +
    `+${bytesText(a.growthBytes)} (${fmt(a.growthBytes / raw, 2)}× the raw JSON the proxy caches). etcd: ${bytesText(e.beforeBytes)} → ${bytesText(e.afterBytes)} (+${bytesText(e.growthBytes)}).`);
  const first = r.modes[0]?.memory[0];
  if (first) L.push('', 'Raw JSON per resource: ' + Object.entries(first.cacheBytes).map(([k, v]) => `${k} ${bytesText(v)} / ${first.cacheObjects[k] ?? 0} objects`).join('; ') + '.');
  L.push('');
}

function mixedSection(mode: string, mx: MixedResult, L: string[]): void {
  L.push(`#### \`${mode}\` mode: consistent reads under writes (${fmt(mx.seconds, 0)} s, ${fmt(mx.writes / mx.seconds, 1)} writes/s achieved of ${mx.writesPerSecondTarget}, ${mx.concurrency} readers)`, '');
  L.push(row(['resource', 'LISTs', 'served', 'hit ratio', 'fallback reasons', 'upstream per served read', 'shared probes', 'freshness waits', 'waited > 0.5 ms', 'wait p50', 'wait p99', 'timeouts']));
  L.push(row(['---', '---:', '---:', '---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  for (const [name, m] of Object.entries(mx.resources)) {
    L.push(row([
      name, String(m.reads), String(m.served), `${fmt(100 * m.hitRatio, 1)}%`,
      Object.entries(m.fallbacks).map(([k, v]) => `${k} ${v}`).join(', ') || '–',
      m.upstreamPerServed === undefined ? '' : fmt(m.upstreamPerServed, 3), m.sharedProbes === undefined ? '' : String(m.sharedProbes),
      String(m.freshness.count), String(m.freshness.waited),
      `${fmt(m.freshness.p50Seconds * 1000, 2)} ms`, `${fmt(m.freshness.p99Seconds * 1000, 1)} ms`, String(m.freshness.timeouts),
    ]));
  }
  L.push('', `Reviews (TokenReview, SubjectAccessReview) during the phase: ${mx.reviews ?? 0}; all resources together ${fmt(mx.upstreamPerServed, 3)} upstream requests per served read.`, '');
  L.push(row(['read', 'count', 'p50 ms', 'p99 ms', 'errors']));
  L.push(row(['---', '---:', '---:', '---:', '---:']));
  for (const [k, v] of Object.entries(mx.reads)) L.push(row([k, String(v.latency.count), fmt(v.latency.p50Ms), fmt(v.latency.p99Ms), String(v.errors)]));
  L.push(row(['writes (direct)', String(mx.writes), fmt(mx.writeLatency.p50Ms), fmt(mx.writeLatency.p99Ms), `${mx.writeErrors}${mx.writesSkipped ? `, ${mx.writesSkipped} skipped` : ''}`]));
  L.push('');
}

function profileSection(m: ModeResult, L: string[]): void {
  const p = m.profile;
  if (!p) return;
  L.push(`#### \`${m.mode}\` mode: the proxy's CPU profile during the indexed cases`, '');
  if (p.error || !p.indexed) {
    L.push(`No summary: ${p.error ?? 'no samples'} (\`${p.file}\`).`, '');
    return;
  }
  const s = p.indexed;
  L.push(`\`${p.file}\`: the proxy side's measured rounds of the six indexed cases, ${fmt(s.wallMs / 1000, 1)} s of wall time, ${fmt(s.busyMs / 1000, 1)} s busy ` +
    `(${s.busySamples} of ${s.samples} samples not idle); top self time, dist/ locations mapped to the TypeScript sources (\`node dist/bench/cpu-profile.js FILE\` for the whole profile):`, '');
  L.push(...profileTable(s), '');
}

export function markdown(r: BenchResult): string {
  const L: string[] = [];
  header(r, L);
  targetsTable(r, L);
  memoryTable(r, L);
  for (const m of r.modes) {
    casesTable(m, L);
    if (m.mixed) mixedSection(m.mode, m.mixed, L);
    profileSection(m, L);
  }
  return L.join('\n');
}
