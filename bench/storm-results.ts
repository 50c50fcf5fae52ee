// The restart-storm benchmark's result document and the analysis that turns the kubelets' sync
// records, per-second counts and the sampler's series into it.
import type { KubeletReport, SecondCounts } from './storm-clients.js';
import type { RunKind, StormKind } from './storm-args.js';
import type { ApiserverSample } from './storm-sampler.js';
import { percentile, round } from './stats.js';

/** 200s, 429s and other answers, by request kind (a second's counts, or a storm's). */
export type Responses = SecondCounts;

export interface HistogramSummary {
  readonly count: number;
  readonly meanSeconds: number;
  readonly p50Seconds: number;
  readonly p99Seconds: number;
}

export interface StormResult {
  readonly kind: StormKind;
  /** Wall-clock ms: the storm's start (all kubelets start / SIGTERM to the apiserver) and the end of observation. */
  readonly from: number;
  readonly to: number;
  /**
   * Seconds from the storm's start until the moment after which every kubelet stayed synced (its
   * watch answered 200 and had not ended) to the end of observation; null if some never got there.
   */
  readonly allSyncedSeconds: number | null;
  readonly unsyncedAtEnd: number;
  /** Kubelets whose sync began or was lost and regained during the storm. */
  readonly resynced: number;
  /** Their (re)sync times, seconds from the storm's start. */
  readonly resyncSeconds: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Restart storm: SIGTERM → process gone → ready again (seconds from the storm's start). */
  readonly apiserverStoppedSeconds?: number;
  readonly apiserverReadySeconds?: number;
  /** Restart storm: from the apiserver's readiness until every kubelet was synced. */
  readonly allSyncedAfterReadySeconds?: number | null;
  readonly responses: Responses;
  /** 429s + other failures: each one made the kubelet send a request again. */
  readonly retries: number;
  readonly apiserver: {
    readonly samples: number;
    readonly failedScrapes: number;
    readonly peakInflightReadOnly: number;
    readonly peakInflightMutating: number;
    readonly peakInqueueReadOnly: number;
    /** APF gauges at the scrapes (not peaks): highest seen. */
    readonly peakExecutingSeats: number;
    readonly peakExecutingSeatsByLevel: Readonly<Record<string, number>>;
    /** Rejections by the apiserver's own APF, by priority_level/reason. */
    readonly apfRejected: Readonly<Record<string, number>>;
  };
  readonly cpuSeconds: Readonly<Record<string, number>>;
  /** The machine's load average (1 min) at the storm's start and end. */
  readonly loadAverage: readonly [number, number];
  /** Per listener (apiserver, proxy): the longest accept queue seen (`ss -ltn` Recv-Q at each sample) and its backlog. */
  readonly acceptQueues: Readonly<Record<string, { readonly peak: number; readonly backlog: number; readonly samples: number }>>;
  /** System-wide TCP counter deltas over the storm (ListenOverflows, TCPSynRetrans). */
  readonly tcp: Readonly<Record<string, number>>;
  readonly proxy?: {
    /** Histogram deltas: flow-control queue wait (all levels), consistent reads' freshness wait (pods), LIST latency (pods). */
    readonly queueWait: HistogramSummary;
    readonly freshnessWait: HistogramSummary;
    readonly listLatency: HistogramSummary;
    readonly queued: Readonly<Record<string, number>>;
    readonly rejected: Readonly<Record<string, number>>;
    readonly admitted: Readonly<Record<string, number>>;
    readonly retryAfter: { readonly count: number; readonly meanSeconds: number; readonly buckets: Readonly<Record<string, number>> };
    readonly requests: Readonly<Record<string, number>>;
    readonly upstreamErrors: Readonly<Record<string, number>>;
    readonly cacheWatchersClosed: Readonly<Record<string, number>>;
  };
}

export interface RunResult {
  readonly kind: RunKind;
  readonly proxyArgs?: readonly string[];
  readonly flowControl?: { readonly file: string; readonly retryAfterSeconds: readonly number[] } | undefined;
  readonly proxyReadySeconds?: number;
  readonly epoch: number;
  readonly storms: readonly StormResult[];
  /**
   * After the last storm: pods of the first `patched` nodes patched directly on the apiserver; how
   * many of their kubelets' watches delivered the MODIFIED event within 10 s (do the watches work?).
   */
  readonly liveness: { readonly patched: number; readonly received: number; readonly seconds: number };
  readonly clients: {
    readonly retryAfterValues: Readonly<Record<string, number>>;
    readonly otherFailures: Readonly<Record<string, number>>;
    readonly firstOther?: string;
    readonly events: Readonly<Record<string, number>>;
    readonly listItems: { readonly min: number; readonly max: number };
    readonly lists: number;
    readonly watches: number;
  };
  /** For the chart and re-analysis: per-second counts since the epoch, and in-flight samples. */
  readonly seconds: Readonly<Record<number, SecondCounts>>;
  readonly inflight: readonly { readonly at: number; readonly readOnly: number; readonly inqueue: number }[];
}

export interface StormDocument {
  readonly date: string;
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly options: Readonly<Record<string, unknown>>;
  readonly machine: Readonly<Record<string, unknown>>;
  readonly apiserver: {
    readonly args: readonly string[];
    readonly maxRequestsInflight: number;
    readonly maxMutatingRequestsInflight: number;
    readonly limitSeatsByLevel: Readonly<Record<string, number>>;
    readonly kubeletLevel: string;
    readonly idleCpuPerSecond: number;
    readonly scrape: { readonly bytes: number; readonly ms: number; readonly periodMs: number };
  };
  readonly population: { readonly nodes: number; readonly pods: number; readonly namespaces: number; readonly seconds: number };
  readonly authorization: Readonly<Record<string, string>>;
  readonly runs: readonly RunResult[];
  readonly targets: readonly { readonly target: string; readonly detail: string; readonly measured: string; readonly pass: boolean | null }[];
  readonly runSeconds: number;
}

/** Sync analysis of one storm window [from, to] from the kubelets' sync records. */
export function syncAnalysis(kubelets: readonly KubeletReport[], from: number, to: number): { sync: Pick<StormResult, 'allSyncedSeconds' | 'unsyncedAtEnd' | 'resynced' | 'resyncSeconds'>; allSyncedAt: number | null } {
  let unsynced = 0;
  let latest = from;
  const times: number[] = [];
  for (const k of kubelets) {
    // Intervals [start, end) with end = +∞ while synced.
    let finalStart: number | undefined;
    let lostInside = false;
    for (let i = 0; i < k.syncs.length; i += 2) {
      const s = k.syncs[i] ?? Infinity;
      const e = k.syncs[i + 1] ?? Infinity;
      if (s > to) break;
      if (e > from && e <= to) lostInside = true;
      if (s <= to && e > to) finalStart = s;
    }
    if (finalStart === undefined) {
      unsynced++;
      continue;
    }
    if (finalStart > from || lostInside) {
      const t = Math.max(from, finalStart);
      times.push((t - from) / 1000);
      latest = Math.max(latest, t);
    }
  }
  times.sort((a, b) => a - b);
  return {
    sync: {
      allSyncedSeconds: unsynced === 0 ? round((latest - from) / 1000, 3) : null,
      unsyncedAtEnd: unsynced,
      resynced: times.length,
      resyncSeconds: { p50: round(percentile(times, 50), 3), p99: round(percentile(times, 99), 3), max: round(times[times.length - 1] ?? Number.NaN, 3) },
    },
    allSyncedAt: unsynced === 0 ? latest : null,
  };
}

/** Per-second counts (seconds since epoch) summed over a window. */
export function responsesBetween(seconds: Readonly<Record<number, SecondCounts>>, epoch: number, from: number, to: number): Responses {
  const a = Math.floor((from - epoch) / 1000);
  const b = Math.floor((to - epoch) / 1000);
  const out: Responses = { list200: 0, watch200: 0, list429: 0, watch429: 0, listOther: 0, watchOther: 0 };
  for (const [k, c] of Object.entries(seconds)) {
    const s = Number(k);
    if (s < a || s > b) continue;
    for (const f of Object.keys(out) as (keyof Responses)[]) out[f] += c[f];
  }
  return out;
}

/** Peaks of the apiserver's series inside a window. */
export function apiserverPeaks(samples: readonly ApiserverSample[], from: number, to: number): Omit<StormResult['apiserver'], 'failedScrapes' | 'apfRejected'> {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  const max = (f: (s: ApiserverSample) => number) => inside.reduce((m, s) => Math.max(m, f(s)), 0);
  const byLevel: Record<string, number> = {};
  for (const s of inside) for (const [k, v] of Object.entries(s.executingSeatsBy)) byLevel[k] = Math.max(byLevel[k] ?? 0, v);
  return {
    samples: inside.length,
    peakInflightReadOnly: max((s) => s.inflightReadOnly),
    peakInflightMutating: max((s) => s.inflightMutating),
    peakInqueueReadOnly: max((s) => s.inqueueReadOnly),
    peakExecutingSeats: max((s) => s.executingSeats),
    peakExecutingSeatsByLevel: byLevel,
  };
}
