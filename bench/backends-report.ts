// The several-apiservers benchmark's results document and its Markdown for bench/README.md.
import type { BackendsOptions } from './backends-args.js';
import type { RunAnalysis, ShareKind } from './backends-analysis.js';
import type { ConnectionsResult } from './backends-connections.js';
import { connectionsMarkdown } from './backends-connections-report.js';
import type { RestartRun } from './backends-restart.js';
import { SHORT_WINDOW_S, HOLD_S } from './backends-analysis.js';

export interface RestartResult {
  readonly run: RestartRun;
  readonly analysis: RunAnalysis;
}

export interface BackendsDocument {
  readonly date: string;
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly options: BackendsOptions;
  readonly machine: {
    readonly cores: number; readonly cpuModel: string; readonly memoryBytes: number; readonly os: string;
    readonly node: string; readonly kubernetes: string; readonly loadAverageAtStart: readonly number[];
  };
  readonly apiservers: readonly string[];
  readonly restart: readonly RestartResult[];
  readonly connections?: ConnectionsResult;
  readonly runSeconds: number;
}

const pct = (v: number): string => `${Math.round(v * 100)}`;
const range = (r: readonly [number, number] | null | undefined): string => (r ? (pct(r[0]) === pct(r[1]) ? `${pct(r[0])}` : `${pct(r[0])}–${pct(r[1])}`) : '–');
const secs = (v: number | null | undefined): string => (v === null || v === undefined ? 'not within the pause' : `${v} s`);
const counts = (c: Readonly<Record<string, number>>): string => {
  const e = Object.entries(c).filter(([, v]) => v !== 0);
  return e.length ? e.map(([k, v]) => `${k}: ${v}`).join(', ') : 'none';
};

function restartMarkdown(doc: BackendsDocument, r: RestartResult): string[] {
  const { run, analysis: a } = r;
  const o = doc.options;
  const n = doc.apiservers.length;
  const names = Array.from({ length: n }, (_, i) => `a${i}`);
  const lines: string[] = [];
  const title = run.reshuffle === 'on' ? `reshuffling on (upstream connection, forwarded watch and client connection max age ${o.maxAgeSeconds} s, jitter 0.2)` : 'reshuffling off (max ages 0)';
  lines.push(`#### Rolling restart, ${title}`, '');
  const shortTotal = a.phases.reduce((x, p) => x + p.shortRequests, 0);
  const watchStarts = a.phases.reduce((x, p) => x + p.watchStarts, 0);
  lines.push(`Share per apiserver in % (min–max over the phase, every second), measured at the apiservers: their open podtemplates WATCHes, and their podtemplates GETs+LISTs over the last ${SHORT_WINDOW_S} s. ` +
    `${shortTotal} short requests and ${watchStarts} watch starts in the run.`, '');
  lines.push(`| phase | s | ${names.map((x) => `watches ${x}`).join(' | ')} | ${names.map((x) => `short ${x}`).join(' | ')} | failed requests |`);
  lines.push(`| --- | ---: | ${names.map(() => '---:').join(' | ')} | ${names.map(() => '---:').join(' | ')} | --- |`);
  for (const p of a.phases) {
    lines.push(`| ${p.name} | ${Math.round(p.to - p.from)} | ${p.range.watches.map(range).join(' | ')} | ${p.range.short.map(range).join(' | ')} | ${counts(p.failures)} |`);
  }
  lines.push('');
  const kinds: [ShareKind, string][] = [['watches', 'watches (apiserver)'], ['short', 'short (apiserver)'], ['proxyWatches', 'long in flight (proxy)'], ['proxyShort', 'answers (proxy)']];
  lines.push(`Time from the restarted apiserver's ready to its share back within ±10% of a third (30.0–36.7%, held ${HOLD_S} s):`, '');
  lines.push(`| restarted | ${kinds.map(([, l]) => l).join(' | ')} |`);
  lines.push(`| --- | ${kinds.map(() => '---:').join(' | ')} |`);
  for (const rec of a.recoveries) {
    const e = run.restarts.find((x) => x.apiserver === rec.apiserver);
    const down = e ? ` (SIGTERM → exited ${((e.stoppedAt - e.stopAt) / 1000).toFixed(1)} s, ready ${((e.readyAt - e.stopAt) / 1000).toFixed(1)} s)` : '';
    lines.push(`| a${rec.apiserver}${down} | ${kinds.map(([k]) => secs(rec.seconds[k])).join(' | ')} |`);
  }
  lines.push('');
  lines.push(`Failed requests in the whole run: ${counts(a.failures)}; the apiservers' own non-2xx podtemplates GETs/LISTs: ${a.apiserverNotOk}. ` +
    `Cache relists: ${counts(a.relists)}; cache watch restarts: ${a.cacheWatchRestarts}. Reshuffles: ${counts(a.reshuffles)}. ` +
    `Open-loop requests skipped (over 200 outstanding): ${run.load.skipped}.`, '');
  return lines;
}

export function backendsMarkdown(doc: BackendsDocument, svg: string | undefined): string {
  const o = doc.options;
  const m = doc.machine;
  const lines: string[] = [];
  lines.push(`### ${doc.apiservers.length} apiservers — ${doc.date}`, '');
  lines.push(`Measured at commit ${doc.source.commit}${doc.source.modified.length ? ` plus uncommitted changes of other engineers in ${doc.source.modified.length} file(s) of proxy/, cache/ (the shared working tree at the time)` : ''}. ` +
    `\`${doc.command}\`, ${doc.runSeconds} s. Machine: ${m.cores} cores (${m.cpuModel}), shared with other engineers' tests while it ran ` +
    `(load average ${m.loadAverageAtStart.join(' ')} at the start); Kubernetes ${m.kubernetes}, Node ${m.node}.`, '');
  if (doc.restart.length) {
    lines.push(`Load: ${o.rate} short requests/s through the proxy (30% GET and 30% LIST of podtemplates, not cached; 20% consistent GET and 20% resourceVersion=0 LIST of configmaps, cached), ` +
      `and ${o.watchers} client-go-like watches of podtemplates (forwarded). Each apiserver restarted in turn: SIGTERM, start, ready, ${o.pauseSeconds} s pause; ${o.warmupSeconds} s of steady load first.`, '');
    if (svg) lines.push(`![share per apiserver over time](results/${svg})`, '');
    for (const r of doc.restart) lines.push(...restartMarkdown(doc, r));
  }
  if (doc.connections) lines.push(...connectionsMarkdown(doc.connections));
  return lines.join('\n');
}
