// From a rolling-restart run's samples to shares per second, per phase and recovery times.
//
// Shares, per apiserver and second:
// - watches (apiserver): its open podtemplates WATCHes (its own gauge) over the clients' watches;
// - short (apiserver): its podtemplates GETs and LISTs over all apiservers', counted by its own
//   apiserver_request_total over the last SHORT_WINDOW_S seconds (one second holds too few requests
//   to tell an even split from noise); a restarted apiserver's counter starts again from 0;
// - watches (proxy): kube_cache_proxy_backend_inflight_requests{kind="long"}, which also holds the
//   cache's own watches (one per cached resource);
// - short (proxy): kube_cache_proxy_backend_requests_total over the same window, which also holds the
//   cache's probes and watches.
// "Back within ±10% of a third": from the restarted apiserver's ready moment, the first second from
// which its share stays within [0.9/3, 1.1/3] for HOLD_S seconds (or until the phase ends).
import type { BackendsSample } from './backends-sampler.js';
import type { RestartRun } from './backends-restart.js';
import { round } from './stats.js';

export const SHORT_WINDOW_S = 3;
export const HOLD_S = 5;
export const SHARE_KINDS = ['watches', 'short', 'proxyWatches', 'proxyShort'] as const;
export type ShareKind = (typeof SHARE_KINDS)[number];

export interface ShareSecond {
  /** Seconds since the run's start. */
  readonly t: number;
  /** Per kind, per apiserver; null when nothing was counted (or a live apiserver's scrape failed). */
  readonly shares: Readonly<Record<ShareKind, readonly (number | null)[]>>;
}

export interface Phase {
  readonly name: string;
  /** Seconds since the run's start. */
  readonly from: number;
  readonly to: number;
}

export interface PhaseShares extends Phase {
  /** Per kind, per apiserver: [min, max] of the share over the phase (null: no sample). */
  readonly range: Readonly<Record<ShareKind, readonly ([number, number] | null)[]>>;
  /** Client-side answers in the phase: short reads not 2xx (by `kind status`), watch starts not 200 other than 410, watch streams that ended in an error. */
  readonly failures: Readonly<Record<string, number>>;
  readonly shortRequests: number;
  readonly watchStarts: number;
}

export interface Recovery {
  readonly apiserver: number;
  /** Seconds from ready until back within ±10% of a third (held), per kind; null: not within the pause. */
  readonly seconds: Readonly<Record<ShareKind, number | null>>;
}

export interface RunAnalysis {
  readonly series: readonly ShareSecond[];
  readonly phases: readonly PhaseShares[];
  readonly recoveries: readonly Recovery[];
  readonly failures: Readonly<Record<string, number>>;
  /** Counter deltas over the run, from the proxy's metrics. */
  readonly relists: Readonly<Record<string, number>>;
  readonly cacheWatchRestarts: number;
  readonly reshuffles: Readonly<Record<string, number>>;
  /** Non-2xx podtemplates GETs/LISTs the apiservers counted themselves. */
  readonly apiserverNotOk: number;
}

function ratios(values: readonly number[]): (number | null)[] {
  const total = values.reduce((a, b) => a + b, 0);
  return values.map((v) => (total > 0 ? round(v / total, 4) : null));
}

/** Per-sample increases of a counter per apiserver; a new pid counts from 0, a failed scrape adds to the next good one. */
function apiserverDeltas(samples: readonly BackendsSample[]): number[][] {
  const n = samples[0]?.apiservers.length ?? 0;
  const last = Array.from({ length: n }, () => ({ pid: 0, short: 0 }));
  return samples.map((s) => s.apiservers.map((a, i) => {
    const l = last[i] as { pid: number; short: number };
    if (!a.ok) return 0;
    const d = a.pid === l.pid ? Math.max(0, a.short - l.short) : a.short;
    last[i] = { pid: a.pid, short: a.short };
    return d;
  }));
}

function windowSum(rows: readonly (readonly number[])[], k: number, w: number): number[] {
  const out = (rows[k] ?? []).map(() => 0);
  for (let j = Math.max(0, k - w + 1); j <= k; j++) (rows[j] ?? []).forEach((v, i) => (out[i] = (out[i] ?? 0) + v));
  return out;
}

/**
 * Each apiserver's open watches over all the clients' watches (at most one each): an apiserver that
 * is running but does not answer (it stops listening at SIGTERM, then drains for up to 60 s) is
 * unknown, and the others' shares still mean what they say.
 */
function watchShares(x: BackendsSample, watchers: number): (number | null)[] {
  const total = Math.max(watchers, x.apiservers.reduce((n, a) => n + (a.ok ? a.watches : 0), 0));
  return x.apiservers.map((a) => (a.pid !== 0 && !a.ok ? null : total > 0 ? round(a.watches / total, 4) : null));
}

export function shareSeries(run: RestartRun): ShareSecond[] {
  const s = run.samples;
  const apiShort = apiserverDeltas(s);
  // The first sample has no predecessor: its "increase" is everything since the process started.
  apiShort[0] = apiShort[0]?.map(() => 0) ?? [];
  const proxyShort = s.map((x, k) => {
    const prev = s[k - 1]?.proxy;
    return (x.proxy?.answered ?? []).map((v, i) => (prev ? Math.max(0, v - (prev.answered[i] ?? 0)) : 0));
  });
  return s.map((x, k) => {
    return {
      t: round((x.at - run.from) / 1000, 2),
      shares: {
        watches: watchShares(x, run.watchers),
        short: k === 0 ? x.apiservers.map(() => null) : ratios(windowSum(apiShort, k, SHORT_WINDOW_S)),
        proxyWatches: x.proxy ? ratios(x.proxy.inflightLong) : x.apiservers.map(() => null),
        proxyShort: k === 0 || !x.proxy ? x.apiservers.map(() => null) : ratios(windowSum(proxyShort, k, SHORT_WINDOW_S)),
      },
    };
  });
}

export function phasesOf(run: RestartRun): Phase[] {
  const sec = (at: number) => round((at - run.from) / 1000, 2);
  const out: Phase[] = [];
  const r = run.restarts;
  out.push({ name: 'steady', from: 0, to: sec(r[0]?.stopAt ?? run.to) });
  r.forEach((e, k) => {
    out.push({ name: `apiserver ${e.apiserver} restarting`, from: sec(e.stopAt), to: sec(e.readyAt) });
    out.push({ name: `after apiserver ${e.apiserver}`, from: sec(e.readyAt), to: sec(r[k + 1]?.stopAt ?? run.to) });
  });
  return out;
}

const inBand = (v: number | null | undefined): boolean => v !== null && v !== undefined && Math.abs(v - 1 / 3) <= 0.1 / 3 + 1e-9;

function recoverySeconds(series: readonly ShareSecond[], kind: ShareKind, i: number, p: Phase): number | null {
  const inside = series.filter((x) => x.t >= p.from && x.t < p.to);
  for (let k = 0; k < inside.length; k++) {
    const hold = inside.slice(k, k + HOLD_S);
    if (hold.length < Math.min(HOLD_S, inside.length - k) || hold.length === 0) break;
    if (hold.every((x) => inBand(x.shares[kind][i]))) return round(Math.max(0, (inside[k]?.t ?? p.from) - p.from), 1);
  }
  return null;
}

export function analyseRun(run: RestartRun): RunAnalysis {
  const series = shareSeries(run);
  const phases = phasesOf(run);
  const n = run.samples[0]?.apiservers.length ?? 0;
  const loadSec = run.load.seconds;
  const failuresIn = (fromMs: number, toMs: number) => {
    const f: Record<string, number> = {};
    let shortRequests = 0;
    let watchStarts = 0;
    for (const s of loadSec) {
      if (s.s * 1000 < fromMs || s.s * 1000 >= toMs) continue;
      for (const [key, v] of Object.entries(s.counts)) {
        const [kind, status] = key.split(' ') as [string, string];
        if (kind === 'watch') watchStarts += v;
        else if (kind !== 'watch-end' && kind !== 'watch-list') shortRequests += v;
        const failed = kind === 'watch-end' ? status === 'error' : kind === 'watch' ? status !== '200' && status !== '410' : !/^2\d\d$/.test(status);
        if (failed) f[key] = (f[key] ?? 0) + v;
      }
    }
    return { failures: f, shortRequests, watchStarts };
  };
  const phaseShares: PhaseShares[] = phases.map((p) => {
    const inside = series.filter((x) => x.t >= p.from && x.t < p.to);
    const range = Object.fromEntries(SHARE_KINDS.map((kind) => [kind, Array.from({ length: n }, (_, i) => {
      const vals = inside.map((x) => x.shares[kind][i]).filter((v): v is number => v !== null && v !== undefined);
      return vals.length ? [Math.min(...vals), Math.max(...vals)] as [number, number] : null;
    })])) as Record<ShareKind, ([number, number] | null)[]>;
    return { ...p, range, ...failuresIn(run.from + p.from * 1000, run.from + p.to * 1000) };
  });
  const recoveries: Recovery[] = run.restarts.map((e) => {
    const p = phases.find((x) => x.name === `after apiserver ${e.apiserver}`) as Phase;
    return { apiserver: e.apiserver, seconds: Object.fromEntries(SHARE_KINDS.map((kind) => [kind, recoverySeconds(series, kind, e.apiserver, p)])) as Record<ShareKind, number | null> };
  });
  const firstProxy = run.samples.find((s) => s.proxy)?.proxy;
  const lastProxy = [...run.samples].reverse().find((s) => s.proxy)?.proxy;
  const delta = (a: Readonly<Record<string, number>> = {}, b: Readonly<Record<string, number>> = {}) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]).filter(([, v]) => v !== 0));
  const apiserverNotOk = apiserverNotOkDelta(run.samples);
  return {
    series,
    phases: phaseShares,
    recoveries,
    failures: failuresIn(run.from - 60_000, run.to + 60_000).failures,
    relists: delta(firstProxy?.relists, lastProxy?.relists),
    cacheWatchRestarts: (lastProxy?.watchRestarts ?? 0) - (firstProxy?.watchRestarts ?? 0),
    reshuffles: delta(firstProxy?.reshuffles, lastProxy?.reshuffles),
    apiserverNotOk,
  };
}

function apiserverNotOkDelta(samples: readonly BackendsSample[]): number {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  for (const s of samples) for (const a of s.apiservers) {
    if (!a.ok) continue;
    if (!first.has(a.pid)) first.set(a.pid, a.shortNotOk);
    last.set(a.pid, a.shortNotOk);
  }
  // A pid first seen after the run's first sample started inside the run: its counter counts from 0.
  const initialPids = new Set((samples[0]?.apiservers ?? []).map((a) => a.pid));
  let n = 0;
  for (const [pid, v] of last) n += v - (initialPids.has(pid) ? (first.get(pid) ?? 0) : 0);
  return n;
}
