// Issue 9's benchmark targets ("reads at memory speed"), checked for one mode's results. The same
// checks (same ids) are made for every mode; bench/report-markdown.ts judges JUDGED_MODE's and shows
// the others beside them.
import { bytesText, fmt } from './stats.js';
import { QUIET_DIRECT, QUIET_READER, type CaseResult, type MemoryResult, type MixedResult, type TargetCheck } from './results.js';

export const FIGURES = {
  p99: 'indexed LIST p99 (node, namespace, label; RV unset and RV=0) ≤ 5 ms',
  rps: 'indexed LIST requests/s ≥ 5× direct',
  cpu: 'apiserver CPU per 1,000 indexed LISTs ≤ 0.1× direct',
  upstream: 'upstream requests per cache-served read: 0 for RV=0; ≤ 0.05 for consistent reads',
  full: 'full LIST of all pods, p50 ≥ 5× faster than direct',
  rss: 'RSS / raw JSON cached ≤ 1.0×',
  quiet: 'quiet-resource consistent read p50 ≤ direct + 5 ms',
  hit: 'busy resources: consistent-read hit ratio ≥ 99% (issue 9, §2)',
} as const;

const rvText = (c: CaseResult) => (c.resourceVersion === '0' ? '0' : 'unset');
const short = (c: CaseResult) => `${c.kind === 'nodeName' ? 'node' : c.kind}, RV ${rvText(c)}`;
const ok = (c: CaseResult) => c.proxy.errors === 0 && c.direct.errors === 0 && c.check.match;

function upstreamChecks(cases: readonly CaseResult[], mx: MixedResult | undefined): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const c of cases) {
    const u = c.proxy.upstream;
    const served = c.proxy.cacheServed ?? 0;
    if (!u || served === 0) continue;
    const consistent = c.resourceVersion === 'unset';
    const reviews = Object.values(u.reviews).reduce((a, b) => a + b, 0);
    out.push({
      id: `upstream:${c.id}`,
      figure: FIGURES.upstream,
      detail: short(c),
      measured: `${fmt(u.perServed, 3)} (${u.forServed} for ${served} served: ${u.apiserverReads} reads${reviews ? ` + ${reviews} reviews` : ''}${u.forwarded ? ` − ${u.forwarded} forwarded` : ''})`,
      goal: consistent ? '≤ 0.05' : '0',
      pass: ok(c) && (consistent ? u.perServed <= 0.05 : u.forServed === 0),
    });
  }
  if (mx?.upstreamPerServed !== undefined) {
    const served = Object.values(mx.resources).reduce((n, r) => n + r.served, 0);
    out.push({
      id: 'upstream:mixed',
      figure: FIGURES.upstream,
      detail: `mixed phase: consistent LISTs at concurrency ${mx.concurrency} under ${fmt(mx.writes / mx.seconds, 0)} writes/s`,
      measured: `${fmt(mx.upstreamPerServed, 3)} (${served} served${mx.reviews ? `, ${mx.reviews} reviews` : ''})`,
      goal: '≤ 0.05',
      pass: mx.upstreamPerServed <= 0.05,
    });
  }
  return out;
}

function mixedChecks(mx: MixedResult): TargetCheck[] {
  const out: TargetCheck[] = [];
  const q = mx.reads[QUIET_READER];
  const d = mx.reads[QUIET_DIRECT];
  if (q && d) {
    out.push({
      id: 'quiet',
      figure: FIGURES.quiet,
      detail: 'mixed phase: one Node by metadata.name',
      measured: `${fmt(q.latency.p50Ms)} ms vs ${fmt(d.latency.p50Ms)} ms direct (+${fmt(q.latency.p50Ms - d.latency.p50Ms)} ms)`,
      goal: '≤ +5 ms',
      pass: q.errors === 0 && q.latency.p50Ms <= d.latency.p50Ms + 5,
    });
  }
  for (const name of ['pods', 'configmaps']) {
    const m = mx.resources[name];
    if (!m) continue;
    out.push({ id: `hit:${name}`, figure: FIGURES.hit, detail: `mixed phase: ${name}`, measured: `${fmt(100 * m.hitRatio, 1)}%`, goal: '≥ 99%', pass: m.hitRatio >= 0.99 });
  }
  return out;
}

export function evaluateTargets(cases: readonly CaseResult[], mem: MemoryResult | undefined, mx: MixedResult | undefined): TargetCheck[] {
  const out: TargetCheck[] = [];
  const indexed = cases.filter((x) => x.indexed);
  for (const c of indexed) {
    out.push({ id: `p99:${c.id}`, figure: FIGURES.p99, detail: short(c), measured: `${fmt(c.proxy.latency.p99Ms)} ms (direct ${fmt(c.direct.latency.p99Ms)} ms)`, goal: '≤ 5 ms', pass: ok(c) && c.proxy.latency.p99Ms <= 5 });
  }
  for (const c of indexed) {
    const ratio = c.proxy.requestsPerSecond / c.direct.requestsPerSecond;
    out.push({ id: `rps:${c.id}`, figure: FIGURES.rps, detail: short(c), measured: `${fmt(ratio, 1)}× (${fmt(c.direct.requestsPerSecond, 0)} → ${fmt(c.proxy.requestsPerSecond, 0)}/s)`, goal: '≥ 5×', pass: ok(c) && ratio >= 5 });
  }
  for (const c of indexed) {
    const d = c.direct.cpuSecondsPer1000['apiserver'] ?? Number.NaN;
    const p = c.proxy.cpuSecondsPer1000['apiserver'] ?? Number.NaN;
    out.push({ id: `cpu:${c.id}`, figure: FIGURES.cpu, detail: short(c), measured: `${fmt(p / d, 2)}× (${fmt(p, 3)} s vs ${fmt(d, 3)} s)`, goal: '≤ 0.1×', pass: ok(c) && p <= d * 0.1 });
  }
  out.push(...upstreamChecks(cases, mx));
  for (const c of cases.filter((x) => x.kind === 'full')) {
    const speedup = c.direct.latency.p50Ms / c.proxy.latency.p50Ms;
    out.push({
      id: `full:${c.id}`,
      figure: FIGURES.full,
      detail: `RV ${rvText(c)} (req/s ${fmt(c.proxy.requestsPerSecond / c.direct.requestsPerSecond, 1)}×)`,
      measured: `${fmt(speedup, 1)}× (${fmt(c.direct.latency.p50Ms, 0)} → ${fmt(c.proxy.latency.p50Ms, 0)} ms)`,
      goal: '≥ 5×',
      pass: ok(c) && speedup >= 5,
    });
  }
  if (mem) {
    const ratio = mem.rssBytes / mem.totalCacheBytes;
    out.push({ id: 'rss', figure: FIGURES.rss, detail: `after sync: RSS ${bytesText(mem.rssBytes)} / raw ${bytesText(mem.totalCacheBytes)}`, measured: `${fmt(ratio, 2)}×`, goal: '≤ 1.0×', pass: ratio <= 1.0 });
  }
  if (mx) out.push(...mixedChecks(mx));
  return out;
}
