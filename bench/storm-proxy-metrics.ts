// What the proxy's /metrics say about one storm: flow-control refusals and admissions, the
// Retry-After it sent, its answers by code and source, upstream errors and cache watches that ended.
import { deltaOf, histogramDelta, histogramQuantile, type Metrics } from './prom.js';
import { round } from './stats.js';
import type { StormResult } from './storm-results.js';

/** Sums of `name` grouped by several labels joined with '/'. */
function sumByLabels(m: Metrics, name: string, labels: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of m) {
    if (s.name !== name) continue;
    const k = labels.map((l) => s.labels[l] ?? '').join('/');
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

export function proxyDelta(m0: Metrics, m1: Metrics): NonNullable<StormResult['proxy']> {
  const d = (name: string, labels: readonly string[]) => deltaOf(sumByLabels(m0, name, labels), sumByLabels(m1, name, labels));
  const h = histogramDelta(m0, m1, 'kube_cache_proxy_flowcontrol_retry_after_seconds', {});
  const buckets: Record<string, number> = {};
  let prev = 0;
  for (const b of h.buckets) {
    const n = b.count - prev;
    prev = b.count;
    if (n > 0) buckets[Number.isFinite(b.le) ? `≤${b.le}` : '>'] = n;
  }
  const summary = (name: string, want: Readonly<Record<string, string>>) => {
    const x = histogramDelta(m0, m1, name, want);
    return { count: x.count, meanSeconds: x.count > 0 ? round(x.sumSeconds / x.count, 4) : Number.NaN, p50Seconds: round(histogramQuantile(x, 0.5), 4), p99Seconds: round(histogramQuantile(x, 0.99), 4) };
  };
  return {
    queueWait: summary('kube_cache_proxy_flowcontrol_queue_wait_seconds', {}),
    freshnessWait: summary('kube_cache_proxy_freshness_wait_seconds', { resource: 'pods' }),
    listLatency: summary('kube_cache_proxy_request_duration_seconds', { verb: 'list', resource: 'pods' }),
    queued: d('kube_cache_proxy_flowcontrol_queued_total', ['level']),
    rejected: d('kube_cache_proxy_flowcontrol_rejected_total', ['level', 'reason']),
    admitted: d('kube_cache_proxy_flowcontrol_admitted_total', ['level']),
    retryAfter: { count: h.count, meanSeconds: h.count > 0 ? round(h.sumSeconds / h.count, 3) : Number.NaN, buckets },
    requests: d('kube_cache_proxy_requests_total', ['verb', 'code', 'source']),
    upstreamErrors: d('kube_cache_proxy_upstream_errors_total', ['reason']),
    cacheWatchersClosed: d('kube_cache_proxy_cache_watchers_closed_total', ['reason']),
  };
}
