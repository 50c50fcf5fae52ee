// Writers and readers for the cache consistency tests: writers create, update and delete their own
// ConfigMaps and pods straight at an apiserver and read through the proxy after every write; every
// LIST answer is checked at once (order, selectors, item RVs) and kept for the Ledger's verdict.
import type { TestCluster } from '../cluster/cluster.js';
import { call } from './http.js';
import { Ledger, keyOf, matches, now, type Kind, type ObjState, type Observation, type Scope, type SeenItem } from './ledger.js';

const COLORS = ['red', 'green', 'blue'] as const;
const SLOTS = 6;

export interface ReadStats {
  ok: number;
  /** Clean error answers (Status bodies) by code. */
  readonly errors: Map<number, number>;
  readonly durationsMs: number[];
  readonly violations: string[];
  readonly observations: Observation[];
}

export function newStats(): ReadStats {
  return { ok: 0, errors: new Map(), durationsMs: [], violations: [], observations: [] };
}

export interface ReadPolicy {
  /** Non-200 answers are allowed (apiservers down); each must still be a Kubernetes Status. */
  readonly allowErrors: boolean;
  /** A read taking longer than this is a hang. */
  readonly maxMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function strings(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(record(v) ?? {})) if (typeof x === 'string') out[k] = x;
  return out;
}

function metaOf(o: unknown): Record<string, unknown> {
  return record(record(o)?.['metadata']) ?? {};
}

export function rvOf(o: unknown): bigint {
  const rv = metaOf(o)['resourceVersion'];
  if (typeof rv !== 'string' || !/^[0-9]+$/.test(rv)) throw new Error(`no resourceVersion in ${JSON.stringify(o).slice(0, 200)}`);
  return BigInt(rv);
}

export function stateOf(o: unknown): ObjState {
  const node = record(record(o)?.['spec'])?.['nodeName'];
  return { labels: strings(metaOf(o)['labels']), node: typeof node === 'string' ? node : undefined };
}

/**
 * One LIST through the proxy, checked on arrival and kept for the ledger. With `limit`, the pages
 * (continue tokens) are put together: all must be of one snapshot, judged as one answer.
 */
export async function observe(cluster: TestCluster, proxyUrl: string, path: string, scope: Scope, namespaces: ReadonlySet<string>, policy: ReadPolicy, stats: ReadStats, limit = 0): Promise<boolean> {
  const consistent = !/[?&]resourceVersion=/.test(path);
  const sep = path.includes('?') ? '&' : '?';
  const t0 = now();
  const items: unknown[] = [];
  let listRV: bigint | undefined;
  let token = '';
  let pages = 0;
  do {
    const url = limit > 0 ? `${path}${sep}limit=${limit}${token ? `&continue=${encodeURIComponent(token)}` : ''}` : path;
    const started = now();
    let reply;
    try {
      reply = await call(cluster, proxyUrl, url);
    } catch (err) {
      stats.violations.push(`${url}: no answer from the proxy: ${String(err)}`);
      return false;
    }
    const ms = now() - started;
    stats.durationsMs.push(ms);
    if (ms > policy.maxMs) stats.violations.push(`${url}: took ${Math.round(ms)} ms (limit ${policy.maxMs})`);
    if (reply.status !== 200) {
      const s = record((() => { try { return reply.json(); } catch { return undefined; } })());
      const clean = s?.['kind'] === 'Status' && s['code'] === reply.status && typeof s['reason'] === 'string';
      // A continue token may expire (410) like the apiserver's; other refusals mean the proxy broke.
      const expected = reply.status >= 429 || (token !== '' && reply.status === 410 && s?.['reason'] === 'Expired');
      if (!policy.allowErrors || !clean || !expected) stats.violations.push(`${url}: ${reply.status} ${reply.text().slice(0, 300)}`);
      stats.errors.set(reply.status, (stats.errors.get(reply.status) ?? 0) + 1);
      return false;
    }
    const body = record(reply.json());
    const rv = rvOf(body);
    if (listRV !== undefined && rv !== listRV) stats.violations.push(`${url}: page at RV ${rv}, the first page at RV ${listRV}`);
    listRV ??= rv;
    items.push(...(Array.isArray(body?.['items']) ? (body['items'] as unknown[]) : []));
    const next = record(body?.['metadata'])?.['continue'];
    token = typeof next === 'string' ? next : '';
    pages++;
    if (pages > 1000) throw new Error(`${path}: more than 1000 pages`);
  } while (limit > 0 && token !== '');
  const t1 = now();
  const X = listRV ?? 0n;
  const seen = new Map<string, SeenItem>();
  let previous = '';
  for (const item of items) {
    const m = metaOf(item);
    const ns = typeof m['namespace'] === 'string' ? m['namespace'] : '';
    const name = typeof m['name'] === 'string' ? m['name'] : '';
    const key = keyOf(ns, name);
    const rv = rvOf(item);
    const s = stateOf(item);
    if (key <= previous) stats.violations.push(`${path}: ${key} after ${previous}: not sorted by key`);
    previous = key;
    if (rv > X) stats.violations.push(`${path}: ${key} at RV ${rv} in a list at RV ${X}`);
    if (!matches(scope, ns, s)) stats.violations.push(`${path}: ${key} does not match the selector`);
    if (namespaces.has(ns)) seen.set(key, { key, rv, terminating: typeof m['deletionTimestamp'] === 'string', ...s });
  }
  stats.ok++;
  stats.observations.push({ path: limit > 0 ? `${path} (${pages} pages of ${limit})` : path, scope, consistent, t0, t1, listRV: X, items: seen });
  return true;
}

interface Slot {
  readonly kind: Kind;
  readonly namespace: string;
  readonly index: number;
  /** Bumped when a write's outcome is unknown: the next object gets a fresh name. */
  gen: number;
  state: ObjState | undefined;
}

export interface WriterOptions {
  readonly cluster: TestCluster;
  readonly proxyUrl: string;
  /** Unique per run: the writer owns the objects named `${id}-…` and label writer=${id}. */
  readonly id: string;
  readonly namespaces: readonly string[];
  readonly nodes: readonly string[];
  readonly ledger: Ledger;
  readonly stats: ReadStats;
  readonly policy: ReadPolicy;
  /** The apiserver URL for the n-th write, or undefined to wait a little. */
  readonly target: (n: number) => string | undefined;
  /** Write failures are expected (apiservers going down): the object is abandoned, not a violation. */
  readonly tolerateWriteErrors: boolean;
  readonly done: (writes: number) => boolean;
}

export interface WriterResult {
  readonly writes: number;
  readonly failedWrites: number;
}

const enc = encodeURIComponent;

/** A writer: write, then read through the proxy, until `done`. */
export async function runWriter(o: WriterOptions): Promise<WriterResult> {
  const all = new Set(o.namespaces);
  const slots: Slot[] = [];
  for (const kind of ['configmaps', 'pods'] as const) {
    for (let i = 0; i < SLOTS; i++) slots.push({ kind, namespace: o.namespaces[i % o.namespaces.length] ?? '', index: i, gen: 0, state: undefined });
  }
  let writes = 0;
  let failed = 0;
  while (!o.done(writes)) {
    const server = o.target(writes);
    if (server === undefined) {
      await sleep(50);
      continue;
    }
    const slot = pick(slots);
    const name = `${o.id}-${slot.kind === 'pods' ? 'p' : 'c'}${slot.index}${slot.gen ? `g${slot.gen}` : ''}`;
    const base = `/api/v1/namespaces/${slot.namespace}/${slot.kind}`;
    const before = slot.state;
    const color = pick(COLORS);
    let method: 'POST' | 'PATCH' | 'DELETE';
    let path: string;
    let body: string | undefined;
    let headers: Record<string, string> | undefined;
    if (!before) {
      method = 'POST';
      path = base;
      const metadata = { name, labels: { writer: o.id, color } };
      body = JSON.stringify(slot.kind === 'configmaps'
        ? { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { v: String(writes) } }
        : { apiVersion: 'v1', kind: 'Pod', metadata, spec: { nodeName: pick(o.nodes), containers: [{ name: 'c', image: 'registry.example/demo:1' }] } });
    } else if (Math.random() < 0.55) {
      method = 'PATCH';
      path = `${base}/${name}`;
      // Always a change (a no-op patch answers with the old resourceVersion and writes nothing).
      body = JSON.stringify(slot.kind === 'configmaps' ? { metadata: { labels: { color } }, data: { v: String(writes) } } : { metadata: { labels: { color, n: String(writes) } } });
      headers = { 'content-type': 'application/merge-patch+json' };
    } else {
      method = 'DELETE';
      path = `${base}/${name}${slot.kind === 'pods' ? '?gracePeriodSeconds=0' : ''}`;
    }
    const start = now();
    let reply;
    try {
      reply = await call(o.cluster, server, path, { method, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) });
    } catch (err) {
      reply = undefined;
      if (!o.tolerateWriteErrors) throw new Error(`${method} ${path} at ${server}: ${String(err)}`);
    }
    const expected = method === 'POST' ? 201 : 200;
    if (!reply || reply.status !== expected) {
      if (reply && !o.tolerateWriteErrors) throw new Error(`${method} ${path} at ${server}: ${reply.status} ${reply.text().slice(0, 300)}`);
      o.ledger.abandon(slot.kind, slot.namespace, name, start);
      slot.gen++;
      slot.state = undefined;
      failed++;
      await sleep(100);
      continue;
    }
    writes++;
    const obj = reply.json();
    if (method === 'DELETE') {
      o.ledger.deleted(slot.kind, slot.namespace, name, start, slot.kind === 'pods' ? rvOf(obj) : undefined);
      slot.state = undefined;
    } else {
      slot.state = stateOf(obj);
      o.ledger.set(slot.kind, slot.namespace, name, start, rvOf(obj), slot.state);
    }
    // Read through the proxy what this write affects: the namespace, a label selector, and for pods
    // spec.nodeName across namespaces (configmaps: the writer's label across namespaces).
    const touched = slot.state ?? before;
    const labelColor = method === 'PATCH' && before && Math.random() < 0.5 ? before.labels['color'] ?? color : touched?.labels['color'] ?? color;
    const selector = `writer=${o.id},color=${labelColor}`;
    const reads: Array<[string, Scope]> = [
      [base, { kind: slot.kind, namespace: slot.namespace }],
      [`${base}?labelSelector=${enc(selector)}`, { kind: slot.kind, namespace: slot.namespace, labels: { writer: o.id, color: labelColor } }],
      slot.kind === 'pods'
        ? [`/api/v1/pods?fieldSelector=${enc(`spec.nodeName=${touched?.node ?? ''}`)}`, { kind: 'pods', node: touched?.node ?? '' }]
        : [`/api/v1/configmaps?labelSelector=${enc(`writer=${o.id}`)}`, { kind: 'configmaps', labels: { writer: o.id } }],
    ];
    for (const [p, scope] of reads) await observe(o.cluster, o.proxyUrl, p, scope, all, o.policy, o.stats);
  }
  return { writes, failedWrites: failed };
}

/** Objects written once before the proxy starts and never touched: every LIST must show them. */
export async function seed(cluster: TestCluster, server: string, ledger: Ledger, namespaces: readonly string[], nodes: readonly string[], perNamespace: number): Promise<void> {
  for (const ns of namespaces) {
    const r = await call(cluster, server, '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ metadata: { name: ns } }) });
    if (r.status !== 201) throw new Error(`namespace ${ns}: ${r.status} ${r.text()}`);
  }
  const jobs: Array<Promise<void>> = [];
  for (const ns of namespaces) {
    for (let i = 0; i < perNamespace; i++) {
      for (const kind of ['configmaps', 'pods'] as const) {
        const name = `seed-${kind === 'pods' ? 'p' : 'c'}${i}`;
        const metadata = { name, labels: { seed: 'true', color: COLORS[i % COLORS.length] ?? 'red' } };
        const body = kind === 'configmaps'
          ? { metadata, data: { i: String(i) } }
          : { metadata, spec: { nodeName: nodes[i % nodes.length], containers: [{ name: 'c', image: 'registry.example/demo:1' }] } };
        jobs.push((async () => {
          const start = now();
          const r = await call(cluster, server, `/api/v1/namespaces/${ns}/${kind}`, { method: 'POST', body: JSON.stringify(body) });
          if (r.status !== 201) throw new Error(`seed ${ns}/${name}: ${r.status} ${r.text()}`);
          const obj = r.json();
          ledger.set(kind, ns, name, start, rvOf(obj), stateOf(obj));
        })());
      }
    }
  }
  await Promise.all(jobs);
}

/** The q-quantile of `xs` (sorted copy). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The proxy's /metrics, parsed (Prometheus text format, no escapes in our label values). */
export async function scrape(metricsUrl: string): Promise<Sample[]> {
  const res = await fetch(`${metricsUrl}/metrics`);
  const text = await res.text();
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[l[1] ?? ''] = l[2] ?? '';
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

export function total(samples: readonly Sample[], name: string, where: (l: Readonly<Record<string, string>>) => boolean = () => true): number {
  return samples.filter((s) => s.name === name && where(s.labels)).reduce((n, s) => n + s.value, 0);
}

/** A counter's growth between two scrapes, summed by one label's values (zeros left out). */
export function growthBy(before: readonly Sample[], after: readonly Sample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [samples, sign] of [[after, 1], [before, -1]] as const) {
    for (const s of samples) if (s.name === name) out[s.labels[label] ?? ''] = (out[s.labels[label] ?? ''] ?? 0) + sign * s.value;
  }
  for (const [k, v] of Object.entries(out)) if (v === 0) delete out[k];
  return out;
}

/** What the cache did between two scrapes, for the resources given. */
export function cacheReport(before: readonly Sample[], after: readonly Sample[], resources: readonly string[]): { served: number; fallbacks: Map<string, number>; hitRatio: number; waits: string; timeouts: number } {
  const mine = (l: Readonly<Record<string, string>>) => resources.includes(l['resource'] ?? '') && (l['verb'] === undefined || l['verb'] === 'list');
  const delta = (name: string, where: (l: Readonly<Record<string, string>>) => boolean) => total(after, name, where) - total(before, name, where);
  const served = delta('kube_cache_proxy_cache_served_total', mine);
  const fallbacks = new Map<string, number>();
  for (const s of after) {
    if (s.name !== 'kube_cache_proxy_cache_fallbacks_total' || !mine(s.labels)) continue;
    const reason = s.labels['reason'] ?? '';
    fallbacks.set(reason, (fallbacks.get(reason) ?? 0) + s.value - total(before, s.name, (l) => l['reason'] === reason && l['resource'] === s.labels['resource'] && l['verb'] === s.labels['verb']));
  }
  for (const [k, v] of fallbacks) if (v === 0) fallbacks.delete(k);
  const forwarded = [...fallbacks.values()].reduce((a, b) => a + b, 0);
  // The freshness-wait histogram, cumulative buckets summed over the resources, per outcome.
  const parts: string[] = [];
  let timeouts = 0;
  for (const outcome of ['fresh', 'timeout']) {
    const bucket = (le: string) => delta('kube_cache_proxy_freshness_wait_seconds_bucket', (l) => mine(l) && l['outcome'] === outcome && l['le'] === le);
    const count = bucket('+Inf');
    if (outcome === 'timeout') timeouts = count;
    if (count === 0) continue;
    const les = [...new Set(after.filter((s) => s.name === 'kube_cache_proxy_freshness_wait_seconds_bucket').map((s) => s.labels['le'] ?? ''))].filter((le) => le !== '+Inf').sort((a, b) => Number(a) - Number(b));
    const cells: string[] = [];
    let prev = 0;
    for (const le of [...les, '+Inf']) {
      const c = bucket(le);
      if (c - prev > 0) cells.push(`≤${le}s:${c - prev}`);
      prev = c;
    }
    const sum = delta('kube_cache_proxy_freshness_wait_seconds_sum', (l) => mine(l) && l['outcome'] === outcome);
    parts.push(`${outcome} n=${count} mean=${(sum / count * 1000).toFixed(1)}ms [${cells.join(' ')}]`);
  }
  return { served, fallbacks, hitRatio: served / Math.max(1, served + forwarded), waits: parts.join('; '), timeouts };
}
