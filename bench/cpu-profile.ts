// A V8 CPU profile (node --cpu-prof, a .cpuprofile file) summarised: the top self-time functions by
// file:line, optionally only over time windows (the benchmark's indexed cases). Sample times are in
// µs of the monotonic clock, the same as process.hrtime in any process of the machine, so windows
// taken in the benchmark's process select the proxy's samples. Locations in dist/ are mapped back to
// the TypeScript sources through the emitted source maps.
//
//   node dist/bench/cpu-profile.js FILE.cpuprofile [top=20]
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { relative } from 'node:path';
import { repoRoot } from '../test/cluster/paths.js';
import { round } from './stats.js';

/** A time window in µs of the monotonic clock (process.hrtime.bigint() / 1000). */
export interface Window {
  readonly fromUs: number;
  readonly toUs: number;
}

export interface ProfileEntry {
  /** Function name, `(anonymous)`, or V8's pseudo-entries: (garbage collector), (program). */
  readonly function: string;
  /** file:line (1-based) relative to the repository, or node:… for Node's own modules. */
  readonly location: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) samples. */
  readonly percent: number;
}

export interface ProfileSummary {
  /** Samples taken in the windows (or in all) and how many of them were busy (not idle). */
  readonly samples: number;
  readonly busySamples: number;
  /** Busy time: samples × their interval. */
  readonly busyMs: number;
  readonly wallMs: number;
  readonly top: readonly ProfileEntry[];
}

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface Profile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame }[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseProfile(text: string): Profile {
  const v: unknown = JSON.parse(text);
  if (!isRecord(v) || !Array.isArray(v['nodes']) || !Array.isArray(v['samples']) || !Array.isArray(v['timeDeltas']) || typeof v['startTime'] !== 'number') {
    throw new Error('not a V8 CPU profile (nodes, samples, timeDeltas, startTime)');
  }
  const nodes: Profile['nodes'][number][] = [];
  for (const n of v['nodes'] as unknown[]) {
    if (!isRecord(n) || typeof n['id'] !== 'number' || !isRecord(n['callFrame'])) continue;
    const cf = n['callFrame'];
    nodes.push({
      id: n['id'],
      callFrame: {
        functionName: typeof cf['functionName'] === 'string' ? cf['functionName'] : '',
        url: typeof cf['url'] === 'string' ? cf['url'] : '',
        lineNumber: typeof cf['lineNumber'] === 'number' ? cf['lineNumber'] : -1,
        columnNumber: typeof cf['columnNumber'] === 'number' ? cf['columnNumber'] : 0,
      },
    });
  }
  const numbers = (a: unknown[]) => a.map((x) => (typeof x === 'number' ? x : Number.NaN));
  return { nodes, startTime: v['startTime'], samples: numbers(v['samples'] as unknown[]), timeDeltas: numbers(v['timeDeltas'] as unknown[]) };
}

/** Maps dist/ locations to their TypeScript sources, one source map per file (cached). */
class Locations {
  readonly #root: string;
  readonly #maps = new Map<string, SourceMap | undefined>();

  constructor(root: string) {
    this.#root = root;
  }

  /** `url` with a 0-based line and column, as V8 gives them. */
  text(url: string, line0: number, column0: number): string {
    if (url === '') return '';
    if (!url.startsWith('file://')) return line0 >= 0 ? `${url}:${line0 + 1}` : url;
    const file = fileURLToPath(url);
    const mapped = this.#map(file)?.findEntry(line0, Math.max(0, column0));
    if (mapped && 'originalSource' in mapped && typeof mapped.originalSource === 'string') {
      const src = mapped.originalSource.startsWith('file://') ? fileURLToPath(mapped.originalSource) : mapped.originalSource;
      return `${relative(this.#root, src)}:${mapped.originalLine + 1}`;
    }
    return `${relative(this.#root, file)}:${line0 + 1}`;
  }

  #map(file: string): SourceMap | undefined {
    if (this.#maps.has(file)) return this.#maps.get(file);
    let map: SourceMap | undefined;
    try {
      if (existsSync(`${file}.map`)) {
        const payload: unknown = JSON.parse(readFileSync(`${file}.map`, 'utf8'));
        if (isRecord(payload)) {
          // Sources are relative to the map: make them absolute URLs.
          const sources = Array.isArray(payload['sources']) ? payload['sources'].map((s) => (typeof s === 'string' ? new URL(s, pathToFileURL(file)).href : s)) : [];
          map = new SourceMap({ ...(payload as object), sources } as ConstructorParameters<typeof SourceMap>[0]);
        }
      }
    } catch {
      map = undefined;
    }
    this.#maps.set(file, map);
    return map;
  }
}

/**
 * The top `top` functions by self time, over the samples inside `windows` (all samples when
 * undefined). Idle samples are counted apart; garbage collection and (program) stay in the list.
 */
export function summariseProfile(text: string, o: { readonly windows?: readonly Window[]; readonly top?: number; readonly root?: string } = {}): ProfileSummary {
  const p = parseProfile(text);
  const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const windows = o.windows ? [...o.windows].sort((a, b) => a.fromUs - b.fromUs) : undefined;
  const inWindow = (t: number) => !windows || windows.some((w) => t >= w.fromUs && t <= w.toUs);
  const hits = new Map<string, { fn: string; url: string; line: number; column: number; ms: number }>();
  let t = p.startTime;
  let samples = 0;
  let busy = 0;
  let busyMs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (!inWindow(t)) continue;
    samples++;
    const cf = byId.get(p.samples[i] ?? -1);
    if (!cf || cf.functionName === '(idle)') continue;
    // A sample stands for the time until the next one.
    const ms = (p.timeDeltas[i + 1] ?? dt) / 1000;
    busy++;
    busyMs += ms;
    const key = `${cf.functionName}\u0000${cf.url}\u0000${cf.lineNumber}\u0000${cf.columnNumber}`;
    const e = hits.get(key);
    if (e) e.ms += ms;
    else hits.set(key, { fn: cf.functionName || '(anonymous)', url: cf.url, line: cf.lineNumber, column: cf.columnNumber, ms });
  }
  const wallMs = windows ? windows.reduce((n, w) => n + (w.toUs - w.fromUs) / 1000, 0) : ((p.timeDeltas.reduce((n, d) => n + d, 0)) / 1000);
  const loc = new Locations(o.root ?? repoRoot());
  const top = [...hits.values()].sort((a, b) => b.ms - a.ms).slice(0, o.top ?? 20).map((e) => ({
    function: e.fn,
    location: loc.text(e.url, e.line, e.column),
    selfMs: round(e.ms, 1),
    percent: round((100 * e.ms) / Math.max(busyMs, 1e-9), 1),
  }));
  return { samples, busySamples: busy, busyMs: round(busyMs, 1), wallMs: round(wallMs, 1), top };
}

export function profileTable(s: ProfileSummary): string[] {
  const L = ['| self ms | share of busy | function | location |', '| ---: | ---: | --- | --- |'];
  for (const e of s.top) L.push(`| ${e.selfMs.toFixed(0)} | ${e.percent.toFixed(1)}% | \`${e.function}\` | ${e.location || '–'} |`);
  return L;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, topText] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/cpu-profile.js FILE.cpuprofile [top=20]\n');
    process.exit(2);
  }
  const s = summariseProfile(readFileSync(file, 'utf8'), { top: Number(topText ?? 20) || 20 });
  process.stdout.write(`${s.samples} samples, ${s.busySamples} busy (${(s.busyMs / 1000).toFixed(1)} s of ${(s.wallMs / 1000).toFixed(1)} s)\n`);
  process.stdout.write(`${profileTable(s).join('\n')}\n`);
}
