// The benchmark's result document (written as JSON to bench/results/): one cluster and population,
// then one proxy process per authorization mode, each with its cases, memory, mixed phase, targets
// and (with --cpu-prof) a CPU profile summary. Targets: bench/targets.ts; Markdown: bench/report-markdown.ts.
import type { LatencyStats } from './stats.js';
import type { HistogramDelta } from './prom.js';
import type { AuthorizationMode } from './args.js';
import type { ProfileSummary } from './cpu-profile.js';

/**
 * What the apiserver served for the proxy while the proxy side of a case ran (its own
 * apiserver_request_total deltas): reads of the case's resource and token/subject access reviews.
 * The proxy's watches (its main watch, progress watches) are not counted: they are the cache's
 * upkeep, not the reads'.
 */
export interface Upstream {
  /** LISTs and GETs of the resource the apiserver answered (probes, shared freshness probes, forwarded reads, relists). */
  readonly apiserverReads: number;
  /** tokenreviews and subjectaccessreviews the apiserver answered, by resource. */
  readonly reviews: Readonly<Record<string, number>>;
  /** Reads the proxy forwarded (its fallbacks): their upstream request is the read itself. */
  readonly forwarded: number;
  /** apiserverReads + reviews − forwarded: the upstream requests the reads the cache served cost. */
  readonly forServed: number;
  /** forServed ÷ reads the cache served (NaN when it served none). */
  readonly perServed: number;
  /** Shared freshness probes sent (kube_cache_proxy_freshness_probes_total; local mode) and the consistent reads that asked them. */
  readonly sharedProbes: number;
  readonly freshnessReads: number;
}

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
  /** Proxy only: the upstream requests of the proxy side. */
  readonly upstream?: Upstream;
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
  /** kube_cache_proxy_cache_bytes: the raw JSON bytes of the cached objects (as list items), per resource. */
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
   * forwarded (and the direct reader's), ÷ reads served from the cache. Reviews are counted for the
   * phase as a whole (MixedResult.reviews).
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
  readonly concurrency: number;
  readonly writesPerSecondTarget: number;
  readonly writes: number;
  readonly writeErrors: number;
  readonly writesSkipped: number;
  readonly writeLatency: LatencyStats;
  readonly reads: Readonly<Record<string, { readonly errors: number; readonly latency: LatencyStats }>>;
  readonly readErrorsFirst?: string;
  readonly resources: Readonly<Record<string, MixedResource>>;
  /** tokenreviews and subjectaccessreviews the apiserver answered during the phase. */
  readonly reviews?: number;
  /** All resources: (LISTs − forwarded − the direct reader's + reviews) ÷ reads served from the cache. */
  readonly upstreamPerServed?: number;
  readonly cpuSeconds: Readonly<Record<string, number>>;
}

export interface TargetCheck {
  /** Stable across modes (the same check of another mode has the same id). */
  readonly id: string;
  /** The figure of issue 9's table this check belongs to. */
  readonly figure: string;
  readonly detail: string;
  readonly measured: string;
  readonly goal: string;
  readonly pass: boolean;
}

export interface ProfileResult {
  readonly file: string;
  /** Over the proxy side's measured rounds of the indexed cases only. */
  readonly indexed?: ProfileSummary;
  /** Over the whole life of the proxy process (sync, all cases, the mixed phase). */
  readonly whole?: ProfileSummary;
  readonly error?: string;
}

export interface ModeResult {
  readonly mode: AuthorizationMode;
  readonly proxyArgs: readonly string[];
  readonly readySeconds: number;
  readonly idleCpuPerSecond: Readonly<Record<string, number>>;
  readonly memory: readonly MemoryResult[];
  readonly cases: readonly CaseResult[];
  readonly mixed: MixedResult | undefined;
  readonly targets: readonly TargetCheck[];
  readonly profile?: ProfileResult;
  readonly seconds: number;
}

export interface ProcessMemory {
  readonly beforeBytes: number;
  readonly afterBytes: number;
  readonly growthBytes: number;
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
    /** Raw JSON per pod as the first proxy cached it. */
    readonly meanPodBytes: number;
    readonly apiserverCpuSeconds: number;
    /** The anchor: the apiserver's (and etcd's) RSS (VmRSS) before the population and after it. */
    readonly apiserverRss: ProcessMemory;
    readonly etcdRss: ProcessMemory;
  };
  /** The proxy with --cache-resources none, idle: what a cached object adds to. */
  readonly baseline: { readonly rssBytes: number; readonly heapUsedBytes: number; readonly externalBytes: number } | undefined;
  readonly judgedMode: AuthorizationMode;
  readonly modes: readonly ModeResult[];
  readonly runSeconds: number;
}

/** The mixed phase's readers of the quiet resource (bench/mixed.ts names them). */
export const QUIET_READER = 'one node by metadata.name (quiet resource), own reader';
export const QUIET_DIRECT = 'the same, direct to the apiserver';
