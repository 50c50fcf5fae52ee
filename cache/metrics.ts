// The cache's metrics, created on a registry it is given.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ReflectorMetrics {
  store(resource: string, objects: number, bytes: number): void;
  resourceVersion(resource: string, rv: bigint): void;
  relist(resource: string, reason: string): void;
  watchRestart(resource: string, reason: string): void;
  bookmark(resource: string): void;
  /** The resource is out of touch with the apiservers (watch-health.ts), or has caught up again. */
  stale(resource: string, stale: boolean): void;
}

export interface CacheMetrics extends ReflectorMetrics {
  synced(resource: string, synced: boolean): void;
  /** The resource is configured but cannot be cached (its reads are forwarded), or can again. */
  notCached(resource: string, notCached: boolean): void;
  /** A read the cache did not serve, and why. */
  fallback(resource: string, verb: string, reason: string): void;
  /** A read the cache served, and which index chose its candidates. */
  served(resource: string, verb: string, index: string): void;
  freshnessWait(resource: string, outcome: 'fresh' | 'timeout', seconds: number): void;
  /** A consistent read asked the resource's shared freshness proofs for a target (cache/freshness-proof.ts). */
  freshnessRead(resource: string): void;
  /** A shared freshness probe was sent upstream for the resource. */
  freshnessProbe(resource: string): void;
}

export interface WatchMetrics {
  watcherOpened(resource: string): void;
  watcherClosed(resource: string, reason: string): void;
  /** Lines (events and bookmarks) queued to client watchers. */
  delivered(resource: string, lines: number): void;
}

export function createCacheMetrics(registry: Registry): CacheMetrics & WatchMetrics {
  const registers = [registry];
  const objects = new Gauge({ name: 'kube_cache_proxy_cache_objects', help: 'Objects in the cache, per resource.', labelNames: ['resource'] as const, registers });
  const bytes = new Gauge({ name: 'kube_cache_proxy_cache_bytes', help: 'JSON bytes of the cached objects, per resource.', labelNames: ['resource'] as const, registers });
  const rv = new Gauge({ name: 'kube_cache_proxy_cache_resource_version', help: 'The resourceVersion the cache has reached, per resource.', labelNames: ['resource'] as const, registers });
  const synced = new Gauge({ name: 'kube_cache_proxy_cache_synced', help: '1 when the resource\'s cache is synced and serving, else 0.', labelNames: ['resource'] as const, registers });
  const stale = new Gauge({ name: 'kube_cache_proxy_cache_stale', help: '1 while the resource\'s cache is out of touch with the apiservers and does not serve reads of any state or new watches, else 0.', labelNames: ['resource'] as const, registers });
  const notCached = new Gauge({ name: 'kube_cache_proxy_cache_not_cached', help: '1 when a configured resource cannot be cached (not served by the apiservers, discovery failed): its reads are forwarded.', labelNames: ['resource'] as const, registers });
  const relists = new Counter({ name: 'kube_cache_proxy_cache_relists_total', help: 'Full LISTs into a new store, by reason (initial, expired, parse_error).', labelNames: ['resource', 'reason'] as const, registers });
  const restarts = new Counter({ name: 'kube_cache_proxy_cache_watch_restarts_total', help: 'Upstream watches that ended in an error and were resumed or relisted, by reason (expired, connection, stalled, closed, status_<code>, parse).', labelNames: ['resource', 'reason'] as const, registers });
  const bookmarks = new Counter({ name: 'kube_cache_proxy_cache_bookmarks_total', help: 'Bookmarks received on the cache\'s upstream watches.', labelNames: ['resource'] as const, registers });
  const fallbacks = new Counter({ name: 'kube_cache_proxy_cache_fallbacks_total', help: 'Reads of cached resources forwarded to the apiserver, by reason.', labelNames: ['resource', 'verb', 'reason'] as const, registers });
  const served = new Counter({ name: 'kube_cache_proxy_cache_served_total', help: 'Reads answered from the cache, by the index that chose the candidates.', labelNames: ['resource', 'verb', 'index'] as const, registers });
  const wait = new Histogram({
    name: 'kube_cache_proxy_freshness_wait_seconds',
    help: 'Time a consistent read waited for the cache to reach the apiserver\'s resourceVersion (after the probe), by outcome.',
    labelNames: ['resource', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5],
    registers,
  });
  const proofReads = new Counter({ name: 'kube_cache_proxy_freshness_reads_total', help: 'Consistent reads that asked the resource\'s shared freshness proofs for a resourceVersion to reach.', labelNames: ['resource'] as const, registers });
  const probes = new Counter({ name: 'kube_cache_proxy_freshness_probes_total', help: 'Shared freshness probes sent upstream (a consistent LIST with limit=1, the proxy\'s own credentials), per resource: at most one in flight, shared by the reads that arrived before it started.', labelNames: ['resource'] as const, registers });
  const watchers = new Gauge({ name: 'kube_cache_proxy_cache_watchers', help: 'Client watches served from the cache, per resource.', labelNames: ['resource'] as const, registers });
  const closed = new Counter({ name: 'kube_cache_proxy_cache_watchers_closed_total', help: 'Client watches served from the cache that ended, by reason (timeout, client, slow, shutdown).', labelNames: ['resource', 'reason'] as const, registers });
  const delivered = new Counter({ name: 'kube_cache_proxy_cache_watch_lines_total', help: 'Events and bookmarks queued to client watches served from the cache.', labelNames: ['resource'] as const, registers });
  return {
    watcherOpened(resource) {
      watchers.inc({ resource });
    },
    watcherClosed(resource, reason) {
      watchers.dec({ resource });
      closed.inc({ resource, reason });
    },
    delivered(resource, lines) {
      delivered.inc({ resource }, lines);
    },
    store(resource, n, b) {
      objects.set({ resource }, n);
      bytes.set({ resource }, b);
    },
    resourceVersion(resource, v) {
      rv.set({ resource }, Number(v));
    },
    relist(resource, reason) {
      relists.inc({ resource, reason });
    },
    watchRestart(resource, reason) {
      restarts.inc({ resource, reason });
    },
    bookmark(resource) {
      bookmarks.inc({ resource });
    },
    synced(resource, s) {
      synced.set({ resource }, s ? 1 : 0);
    },
    stale(resource, s) {
      stale.set({ resource }, s ? 1 : 0);
    },
    notCached(resource, n) {
      notCached.set({ resource }, n ? 1 : 0);
    },
    fallback(resource, verb, reason) {
      fallbacks.inc({ resource, verb, reason });
    },
    served(resource, verb, index) {
      served.inc({ resource, verb, index });
    },
    freshnessWait(resource, outcome, seconds) {
      wait.observe({ resource, outcome }, seconds);
    },
    freshnessRead(resource) {
      proofReads.inc({ resource });
    },
    freshnessProbe(resource) {
      probes.inc({ resource });
    },
  };
}
