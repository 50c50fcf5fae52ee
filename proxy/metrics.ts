// The proxy's request metrics, created on a registry it is given.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RequestInfo } from './request-info.js';
import { requestLabels } from './metric-labels.js';

export type Source = 'cache' | 'upstream';

export interface ProxyMetrics {
  /** One finished request; `seconds` is omitted for long-running requests (watches, exec, …). */
  observeRequest(info: RequestInfo, code: number, source: Source, seconds: number | undefined): void;
  inflight(longRunning: boolean, delta: number): void;
  upgrade(code: number): void;
  upgradesActive(delta: number): void;
  upstreamError(reason: string): void;
}

/** An HTTP status code as a label: three digits, else `other`. */
function statusLabel(code: number): string {
  return Number.isInteger(code) && code >= 100 && code <= 999 ? String(code) : 'other';
}

/**
 * `cached`: the cache's resources, whose names are resource label values besides the built-in
 * resources (proxy/metric-labels.ts); any other resource is counted as `other`.
 */
export function createProxyMetrics(registry: Registry, cached: ReadonlyArray<{ readonly group: string; readonly resource: string }> = []): ProxyMetrics {
  const labels = requestLabels(cached);
  const requests = new Counter({
    name: 'kube_cache_proxy_requests_total',
    help: 'Requests answered, by verb, resource, HTTP code and source (cache or upstream).',
    labelNames: ['verb', 'resource', 'code', 'source'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'kube_cache_proxy_request_duration_seconds',
    help: 'Latency of requests that are not long-running, until the last byte of the response.',
    labelNames: ['verb', 'resource', 'source'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const inflight = new Gauge({
    name: 'kube_cache_proxy_inflight_requests',
    help: 'Requests in flight, by kind: short, or long_running (watch, exec, logs, port-forward, proxy).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const upgrades = new Counter({
    name: 'kube_cache_proxy_upgrades_total',
    help: 'Upgrade requests (exec, attach, port-forward over SPDY or WebSocket) by the apiserver\'s status code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const upgradesActive = new Gauge({
    name: 'kube_cache_proxy_upgraded_connections',
    help: 'Upgraded connections currently spliced between a client and an apiserver.',
    registers: [registry],
  });
  const upstreamErrors = new Counter({
    name: 'kube_cache_proxy_upstream_errors_total',
    help: 'Requests that could not be completed with an apiserver, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  inflight.set({ kind: 'short' }, 0);
  inflight.set({ kind: 'long_running' }, 0);
  return {
    observeRequest(info, code, source, seconds) {
      const resource = labels.resource(info);
      const verb = labels.verb(info);
      requests.inc({ verb, resource, code: statusLabel(code), source });
      if (seconds !== undefined) duration.observe({ verb, resource, source }, seconds);
    },
    inflight(longRunning, delta) {
      inflight.inc({ kind: longRunning ? 'long_running' : 'short' }, delta);
    },
    upgrade(code) {
      upgrades.inc({ code: statusLabel(code) });
    },
    upgradesActive(delta) {
      upgradesActive.inc(delta);
    },
    upstreamError(reason) {
      upstreamErrors.inc({ reason });
    },
  };
}
