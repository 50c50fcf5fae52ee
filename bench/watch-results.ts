// What the watch benchmark records: one result per phase (a watcher count, direct or through the
// proxy), the baseline churn, and the run as a whole (written as JSON to bench/results/).
import type { WatchBenchOptions } from './watch-args.js';
import type { LatencyStats } from './stats.js';

export type Side = 'direct' | 'proxy';

export interface ProxyMemory {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly externalBytes: number;
}

export interface PhaseResult {
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

export interface WatchBenchResult {
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

export interface BaselineResult {
  readonly seconds: number;
  readonly patches: number;
  readonly patchErrors: number;
  readonly achievedPerSecond: number;
  readonly patchLatency: LatencyStats;
  readonly cpuSeconds: Readonly<Record<string, number>>;
}
