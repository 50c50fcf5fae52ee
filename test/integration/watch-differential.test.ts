// Differential test of WATCH served from the cache: the same watch sent straight to the apiserver
// and through a caching proxy must deliver the same events, byte for byte.
// - From a resourceVersion N (recent, inside the proxy's history): a scripted sequence of creates,
//   updates, label changes (objects moving into and out of selectors), binding, status changes,
//   finalizers and deletes, under namespace, label, field (indexed spec.nodeName, metadata.name,
//   metadata.namespace, status.phase, !=) and combined selectors. Non-bookmark lines must be equal;
//   bookmarks (timing-dependent) must be well-formed, carry valid resourceVersions, and the proxy
//   must send one before the timeout when the apiserver does.
// - The initial state: watch-list (sendInitialEvents=true, RV unset or N) and legacy watches (RV
//   unset or 0, with and without bookmarks) send the same ADDED lines and the same
//   initial-events-end bookmark (but for its resourceVersion).
// - An RV older than the history: 200 and one ERROR 410 Expired event.
// - Across a relist of the proxy's cache (apiserver restarted after etcd compaction, writes made
//   meanwhile through another apiserver): the client's watch stays open and its events, applied to
//   its initial state, give exactly the apiserver's state.
// The proxy's metrics must show that the watches were served from the cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { scrape, total, growthBy, type Sample } from '../helpers/cache-workload.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { TestCluster } from '../cluster/cluster.js';
import type { CacheConfig } from '../../cache/config.js';

const cluster = sharedCluster();
const RUN = randomBytes(3).toString('hex');
const NS1 = `wd-${RUN}-a`;
const NS2 = `wd-${RUN}-b`;
/** Sorts before NS1's objects: `-` (0x2D) < `/` (0x2F) in the storage keys. */
const NS3 = `wd-${RUN}-a-b`;
const NODE_A = `wd-${RUN}-node-a`;
const NODE_B = `wd-${RUN}-node-b`;
const log = (m: string) => process.stderr.write(`[watch-differential] ${m}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const direct = () => cluster.info.apiservers[0]?.url ?? '';

let proxy: TestProxy;
const agents: Agent[] = [];

function agentFor(c: TestCluster): Agent {
  const a = new Agent({ connect: { ca: readFileSync(c.info.caFile) }, bodyTimeout: 0, headersTimeout: 60_000, connections: 64 });
  agents.push(a);
  return a;
}
let agent: Agent;

before(async () => {
  agent = agentFor(cluster);
  proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}) });
  await ready(proxy);
  for (const ns of [NS1, NS2, NS3]) await must(cluster, direct(), '/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { run: RUN } } }, 201);
  await seed(new Writer(cluster, direct));
});

after(async () => {
  for (const ns of [NS1, NS2, NS3]) await call(cluster, direct(), `/api/v1/namespaces/${ns}`, { method: 'DELETE' });
  for (const n of [NODE_A, NODE_B]) await call(cluster, direct(), `/api/v1/nodes/${n}`, { method: 'DELETE' });
  await proxy.stop();
  await closeAgents();
  await Promise.all(agents.map((a) => a.close()));
});

async function ready(p: TestProxy, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`${p.metricsUrl}/readyz`)).status === 200) return;
    await sleep(100);
  }
  throw new Error(`proxy not ready in ${timeoutMs} ms`);
}

// ------------------------------------------------------------------------------------------------
// Writes straight at an apiserver

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

async function must(c: TestCluster, base: string, path: string, method: Method, body: unknown, status: number, contentType?: string): Promise<Record<string, unknown>> {
  const r: Reply = await call(c, base, path, {
    method, body: body === undefined ? undefined : JSON.stringify(body), headers: contentType ? { 'content-type': contentType } : {},
  });
  assert.equal(r.status, status, `${method} ${path}: ${r.status} ${r.text().slice(0, 400)}`);
  return r.json() as Record<string, unknown>;
}

const MERGE = 'application/merge-patch+json';

function rvOfObject(o: unknown): bigint {
  const m = typeof o === 'object' && o !== null ? (o as Record<string, unknown>)['metadata'] : undefined;
  const rv = typeof m === 'object' && m !== null ? (m as Record<string, unknown>)['resourceVersion'] : undefined;
  if (typeof rv !== 'string' || !/^[0-9]+$/.test(rv)) throw new Error(`no resourceVersion in ${JSON.stringify(o).slice(0, 200)}`);
  return BigInt(rv);
}

/** A small client of one apiserver: every write returns the resourceVersion it produced. */
class Writer {
  last = 0n;
  constructor(readonly c: TestCluster, readonly base: () => string) {}

  async do(path: string, method: Method, body: unknown, status: number, contentType?: string): Promise<bigint> {
    const o = await must(this.c, this.base(), path, method, body, status, contentType);
    const rv = o['kind'] === 'Status' ? 0n : rvOfObject(o);
    if (rv > this.last) this.last = rv;
    return rv;
  }

  configmap(ns: string, name: string, labels: Record<string, string>, data: Record<string, string> = { v: '0' }): Promise<bigint> {
    return this.do(`/api/v1/namespaces/${ns}/configmaps`, 'POST', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { run: RUN, ...labels } }, data }, 201);
  }

  pod(ns: string, name: string, labels: Record<string, string>, nodeName?: string): Promise<bigint> {
    const spec: Record<string, unknown> = { containers: [{ name: 'c', image: 'registry.example/demo:1' }], terminationGracePeriodSeconds: 0 };
    if (nodeName) spec['nodeName'] = nodeName;
    return this.do(`/api/v1/namespaces/${ns}/pods`, 'POST', { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { run: RUN, ...labels } }, spec }, 201);
  }

  patch(path: string, patch: unknown): Promise<bigint> {
    return this.do(path, 'PATCH', patch, 200, MERGE);
  }

  delete(path: string, status = 200): Promise<bigint> {
    return this.do(path, 'DELETE', { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 }, status);
  }
}

// ------------------------------------------------------------------------------------------------
// Watch streams, line by line (each line's exact bytes kept)

interface Line {
  /** The line's bytes as latin1 (one char per byte: string equality is byte equality). */
  readonly bytes: string;
  readonly type: string;
  readonly rv: bigint | undefined;
  readonly object: Record<string, unknown>;
  readonly at: number;
}

class WatchStream {
  status = 0;
  contentType = '';
  readonly lines: Line[] = [];
  ended = false;
  error: string | undefined;
  readonly openedAt = Date.now();
  endedAt = 0;
  readonly done: Promise<void>;
  readonly #abort = new AbortController();
  #waiters: Array<() => void> = [];

  constructor(readonly label: string, base: string, path: string, token: string, a: Agent) {
    this.done = this.#run(base, path, token, a);
  }

  async #run(base: string, path: string, token: string, a: Agent): Promise<void> {
    try {
      const res = await request(`${base}${path}`, { headers: { authorization: `Bearer ${token}` }, dispatcher: a, signal: this.#abort.signal });
      this.status = res.statusCode;
      this.contentType = String(res.headers['content-type'] ?? '');
      let pending: Buffer = Buffer.alloc(0);
      for await (const chunk of res.body) {
        pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
        let nl: number;
        while ((nl = pending.indexOf(0x0a)) >= 0) {
          this.#push(pending.subarray(0, nl + 1));
          pending = pending.subarray(nl + 1);
        }
        this.#wake();
      }
      if (pending.length > 0) this.#push(pending);
    } catch (err) {
      if (!this.#abort.signal.aborted) this.error = String(err);
    } finally {
      this.ended = true;
      this.endedAt = Date.now();
      this.#wake();
    }
  }

  #push(b: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(b.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const e = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    const object = typeof e['object'] === 'object' && e['object'] !== null ? (e['object'] as Record<string, unknown>) : {};
    let rv: bigint | undefined;
    try {
      rv = rvOfObject(object);
    } catch {
      rv = undefined;
    }
    this.lines.push({ bytes: b.toString('latin1'), type: typeof e['type'] === 'string' ? e['type'] : '?', rv, object, at: Date.now() });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits until `pred` holds over the lines so far (or the stream ended); false on timeout. */
  async until(pred: (lines: readonly Line[]) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.lines)) {
      if (this.ended || Date.now() > deadline) return pred(this.lines);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(500, Math.max(1, deadline - Date.now())));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  close(): void {
    this.#abort.abort();
  }

  get events(): Line[] {
    return this.lines.filter((l) => l.type !== 'BOOKMARK');
  }

  get bookmarks(): Line[] {
    return this.lines.filter((l) => l.type === 'BOOKMARK');
  }
}

const adminToken = (c: TestCluster) => c.info.users.admin.token ?? '';
const withQuery = (path: string, q: string) => `${path}${path.includes('?') ? '&' : '?'}${q}`;

/** The bookmark line with its resourceVersion replaced, to compare shapes. */
const bookmarkShape = (l: Line) => l.bytes.replace(/"resourceVersion":"[0-9]+"/, '"resourceVersion":"<RV>"');

/** Problems with the bookmarks of a stream: malformed, or a resourceVersion not bounding the events. */
function bookmarkProblems(s: WatchStream, template: string | undefined, o: { after: bigint; notAbove: bigint }): string[] {
  const out: string[] = [];
  let maxSeen = o.after;
  s.lines.forEach((l, i) => {
    if (l.type !== 'BOOKMARK') {
      if (l.rv !== undefined && l.rv > maxSeen) maxSeen = l.rv;
      return;
    }
    if (l.rv === undefined) return void out.push(`${s.label}: bookmark #${i} without a resourceVersion: ${l.bytes}`);
    if (template !== undefined && bookmarkShape(l) !== template) out.push(`${s.label}: bookmark #${i} shape ${bookmarkShape(l)} != ${template}`);
    if (l.rv < maxSeen) out.push(`${s.label}: bookmark #${i} at ${l.rv} after an event at ${maxSeen}`);
    if (l.rv > o.notAbove) out.push(`${s.label}: bookmark #${i} at ${l.rv} beyond the apiserver's ${o.notAbove}`);
    const later = s.lines.slice(i + 1).find((x) => x.type !== 'BOOKMARK' && x.rv !== undefined && l.rv !== undefined && x.rv <= l.rv);
    if (later) out.push(`${s.label}: event at ${later.rv} after a bookmark at ${l.rv}`);
  });
  return out;
}

/** Events after the initial state (up to the initial-events-end bookmark, if any) whose resourceVersion does not increase. */
function orderProblems(s: WatchStream): string[] {
  const first = s.lines.findIndex((l) => l.type === 'BOOKMARK' && l.bytes.includes('"k8s.io/initial-events-end":"true"'));
  const live = s.lines.slice(first < 0 ? 0 : first + 1).filter((l) => l.type !== 'BOOKMARK');
  const out: string[] = [];
  for (let i = 1; i < live.length; i++) {
    const [a, b] = [live[i - 1], live[i]];
    if (a?.rv !== undefined && b?.rv !== undefined && b.rv <= a.rv) out.push(`${s.label}: ${b.type} at ${b.rv} after ${a.type} at ${a.rv}`);
  }
  return out;
}

/** A readable account of where two line sequences differ. */
function lineDiff(a: readonly Line[], b: readonly Line[]): string | undefined {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x?.bytes === y?.bytes) continue;
    const brief = (l: Line | undefined) => (l ? `${l.type} ${String(l.object['metadata'] && (l.object['metadata'] as Record<string, unknown>)['name'])} rv=${l.rv}` : '(none)');
    const summary = (ls: readonly Line[]) => ls.map(brief).join(', ');
    return `first difference at line ${i}:\n  direct: ${x?.bytes.trimEnd().slice(0, 600) ?? '(none)'}\n  proxy:  ${y?.bytes.trimEnd().slice(0, 600) ?? '(none)'}\n` +
      `  direct (${a.length}): ${summary(a).slice(0, 1500)}\n  proxy (${b.length}): ${summary(b).slice(0, 1500)}`;
  }
  return undefined;
}

const servedWatches = (m: readonly Sample[], resource?: string) =>
  total(m, 'kube_cache_proxy_cache_served_total', (l) => l['verb'] === 'watch' && (resource === undefined || l['resource'] === resource));
const watchFallbacks = (m: readonly Sample[]) => total(m, 'kube_cache_proxy_cache_fallbacks_total', (l) => l['verb'] === 'watch');

// ------------------------------------------------------------------------------------------------
// Objects: seeded before N, then the scripted sequence after N

async function seed(w: Writer): Promise<void> {
  await w.do('/api/v1/nodes', 'POST', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_A, labels: { run: RUN, pool: 'x' } } }, 201);
  await w.configmap(NS1, 'cm-0', { color: 'red' });
  await w.configmap(NS1, 'cm-1', { color: 'green' });
  await w.configmap(NS1, 'cm-2', { color: 'blue' }, { v: '0', html: '<b>&</b>' });
  await w.configmap(NS2, 'cm-0', { color: 'red' });
  await w.pod(NS1, 'p-0', { tier: 'front' }, NODE_A);
  await w.pod(NS1, 'p-1', { tier: 'back' }, NODE_B);
  await w.pod(NS1, 'p-2', { tier: 'back' });
  await w.pod(NS2, 'p-0', { tier: 'front' }, NODE_A);
  // Initial states of some size, whose key order is not (namespace, name) order.
  const names = ['a', 'a-b', 'a.b', 'a0', 'ab', 'b', 'b-1', 'b.1', 'b1', 'z'];
  for (const [i, name] of names.entries()) {
    await w.configmap(NS3, name, i % 3 ? { color: 'red' } : {}, { v: String(i), json: '{"a":[1,2]}' });
    await w.configmap(NS1, `x-${name}`, i % 2 ? { color: 'blue' } : {});
    await w.pod(NS3, name, { tier: i % 2 ? 'front' : 'back' }, i % 3 ? NODE_A : undefined);
  }
}

async function script(w: Writer): Promise<void> {
  const cm = (ns: string, name: string) => `/api/v1/namespaces/${ns}/configmaps/${name}`;
  const pod = (ns: string, name: string) => `/api/v1/namespaces/${ns}/pods/${name}`;
  await w.configmap(NS1, 'cm-3', { color: 'red' });
  await w.configmap(NS1, 'cm-4', {});
  await w.configmap(NS2, 'cm-1', { color: 'blue' });
  await w.patch(cm(NS1, 'cm-0'), { data: { v: '1' } });
  await w.patch(cm(NS1, 'cm-0'), { metadata: { labels: { color: 'green' } } }); // leaves color in (red,blue)
  await w.patch(cm(NS1, 'cm-1'), { metadata: { labels: { color: 'blue' } } }); // enters it
  await w.do(cm(NS1, 'cm-2'), 'PUT', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm-2', namespace: NS1, labels: { run: RUN, color: 'blue' } }, data: { v: 'replaced', x: '"quoted" \u00e9 \u2028 <&>' } }, 200);
  await w.patch(cm(NS1, 'cm-4'), { metadata: { labels: { color: 'red' } } }); // enters; leaves !color
  await w.delete(cm(NS1, 'cm-3'));
  await w.delete(cm(NS1, 'cm-1'));
  await w.patch(cm(NS2, 'cm-0'), { metadata: { labels: { color: null } } });
  await w.pod(NS1, 'p-3', { tier: 'front' });
  await w.pod(NS1, 'p-4', { tier: 'back' }, NODE_A);
  await w.pod(NS2, 'p-1', { tier: 'front' }, NODE_B);
  // Binding moves p-2 into spec.nodeName=NODE_A (and out of spec.nodeName!=NODE_A).
  await w.do(`${pod(NS1, 'p-2')}/binding`, 'POST', { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'p-2' }, target: { apiVersion: 'v1', kind: 'Node', name: NODE_A } }, 201);
  await w.patch(pod(NS1, 'p-0'), { metadata: { labels: { tier: 'back' } } }); // leaves tier=front
  await w.patch(pod(NS1, 'p-4'), { metadata: { labels: { tier: 'front' } } }); // enters tier=front
  await w.do(`${pod(NS1, 'p-0')}/status`, 'PATCH', { status: { phase: 'Running' } }, 200, MERGE); // enters status.phase=Running
  await w.do(`${pod(NS1, 'p-4')}/status`, 'PATCH', { status: { phase: 'Running' } }, 200, MERGE);
  await w.do(`${pod(NS1, 'p-4')}/status`, 'PATCH', { status: { phase: 'Succeeded' } }, 200, MERGE); // leaves it
  // A finalizer: the delete is a MODIFIED (deletionTimestamp), removing the finalizer the DELETED.
  await w.patch(pod(NS1, 'p-3'), { metadata: { finalizers: ['example.com/hold'] } });
  await w.delete(pod(NS1, 'p-3'));
  await w.patch(pod(NS1, 'p-3'), { metadata: { finalizers: null } });
  await w.delete(pod(NS1, 'p-1'));
  await w.delete(pod(NS2, 'p-0'));
  await w.do('/api/v1/nodes', 'POST', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_B, labels: { run: RUN, pool: 'x' } } }, 201);
  await w.patch(`/api/v1/nodes/${NODE_A}`, { metadata: { labels: { pool: 'y' } } }); // leaves pool=x
  await w.patch(`/api/v1/nodes/${NODE_B}`, { spec: { unschedulable: true } });
  await w.delete(`/api/v1/nodes/${NODE_B}`);
  await w.patch(cm(NS1, 'cm-2'), { data: { v: 'last' } });
}

/** The watches compared: [name, path, compare only events up to the script's last write]. */
function variants(): Array<[string, string, boolean]> {
  const q = encodeURIComponent;
  return [
    ['cm namespace', `/api/v1/namespaces/${NS1}/configmaps`, false],
    ['cm label in (move in/out)', `/api/v1/namespaces/${NS1}/configmaps?labelSelector=${q('color in (red,blue)')}`, false],
    ['cm !label', `/api/v1/namespaces/${NS1}/configmaps?labelSelector=${q('!color')}`, false],
    ['cm cluster-wide label', `/api/v1/configmaps?labelSelector=${q(`run=${RUN}`)}`, false],
    ['cm metadata.namespace', `/api/v1/configmaps?fieldSelector=${q(`metadata.namespace=${NS2}`)}`, false],
    ['cm metadata.name', `/api/v1/namespaces/${NS1}/configmaps?fieldSelector=${q('metadata.name=cm-0')}`, false],
    ['cm all', '/api/v1/configmaps', true],
    ['pods spec.nodeName (indexed)', `/api/v1/pods?fieldSelector=${q(`spec.nodeName=${NODE_A}`)}`, false],
    ['pods spec.nodeName + namespace', `/api/v1/namespaces/${NS1}/pods?fieldSelector=${q(`spec.nodeName=${NODE_A}`)}`, false],
    ['pods spec.nodeName!=', `/api/v1/namespaces/${NS1}/pods?fieldSelector=${q(`spec.nodeName!=${NODE_A}`)}`, false],
    ['pods nodeName + label', `/api/v1/pods?fieldSelector=${q(`spec.nodeName=${NODE_A}`)}&labelSelector=${q('tier=front')}`, false],
    ['pods label (move in/out)', `/api/v1/namespaces/${NS1}/pods?labelSelector=${q('tier=front')}`, false],
    ['pods status.phase', `/api/v1/namespaces/${NS1}/pods?fieldSelector=${q('status.phase=Running')}`, false],
    ['pods namespace', `/api/v1/namespaces/${NS2}/pods`, false],
    ['pods all', '/api/v1/pods', true],
    ['nodes label (move out)', `/api/v1/nodes?labelSelector=${q(`run=${RUN},pool=x`)}`, false],
    ['nodes metadata.name', `/api/v1/nodes?fieldSelector=${q(`metadata.name=${NODE_B}`)}`, false],
  ];
}

// ------------------------------------------------------------------------------------------------

test('watches from a resourceVersion: the proxy sends the apiserver\'s events, byte for byte', { timeout: 300_000 }, async (t) => {
  const w = new Writer(cluster, direct);
  // N: a recent resourceVersion, from a LIST made after the proxy synced (so inside its history).
  const list = await must(cluster, direct(), `/api/v1/namespaces/${NS1}/pods`, 'GET', undefined, 200);
  const n = rvOfObject(list);
  const TIMEOUT_S = 40;
  const m0 = await scrape(proxy.metricsUrl);
  const pairs = variants().map(([name, path, prefix], i) => {
    // Every other one as client-go sends it, with `timeout` (which a watch ignores) and its order.
    const p = withQuery(path, i % 2
      ? `allowWatchBookmarks=true&resourceVersion=${n}&timeout=${TIMEOUT_S}s&timeoutSeconds=${TIMEOUT_S}&watch=true`
      : `watch=true&resourceVersion=${n}&allowWatchBookmarks=true&timeoutSeconds=${TIMEOUT_S}`);
    return {
      name, prefix,
      direct: new WatchStream(`${name} (direct)`, direct(), p, adminToken(cluster), agent),
      proxied: new WatchStream(`${name} (proxy)`, proxy.url, p, adminToken(cluster), agent),
    };
  });
  const started = Date.now();
  await script(w);
  const end = w.last;
  const scriptMs = Date.now() - started;
  log(`script: ${scriptMs} ms, resourceVersions ${n}..${end}`);
  assert.ok(scriptMs < (TIMEOUT_S - 8) * 1000, `the scripted writes took ${scriptMs} ms: too slow for watches of ${TIMEOUT_S} s`);
  await Promise.all(pairs.flatMap((p) => [p.direct.done, p.proxied.done]));
  const current = rvOfObject(await must(cluster, direct(), '/api/v1/namespaces', 'GET', undefined, 200));
  const m1 = await scrape(proxy.metricsUrl);

  const problems: string[] = [];
  const report: string[] = [];
  for (const p of pairs) {
    for (const s of [p.direct, p.proxied]) {
      if (s.status !== 200) problems.push(`${s.label}: status ${s.status} ${s.lines.map((l) => l.bytes).join('').slice(0, 300)}`);
      if (s.error) problems.push(`${s.label}: stream error ${s.error}`);
      const lasted = s.endedAt - s.openedAt;
      if (lasted < (TIMEOUT_S - 2) * 1000) problems.push(`${s.label}: ended after ${lasted} ms, before its timeout`);
    }
    if (p.proxied.contentType !== p.direct.contentType) problems.push(`${p.name}: content-type ${p.proxied.contentType} != ${p.direct.contentType}`);
    const keep = (l: Line) => !p.prefix || (l.rv !== undefined && l.rv <= end);
    const a = p.direct.events.filter(keep);
    const b = p.proxied.events.filter(keep);
    const d = lineDiff(a, b);
    if (d) problems.push(`${p.name}: ${d}`);
    if (a.length === 0) problems.push(`${p.name}: the script produced no event for this watch`);
    if (p.direct.events.some((l) => l.type === 'ERROR')) problems.push(`${p.name}: the apiserver sent an ERROR: ${p.direct.events.find((l) => l.type === 'ERROR')?.bytes ?? ''}`);
    // Bookmarks: the same shape as the apiserver's, resourceVersions that bound the events before
    // and after them, and one before the timeout from the proxy when the apiserver sent one.
    const template = p.direct.bookmarks[0] ? bookmarkShape(p.direct.bookmarks[0]) : undefined;
    for (const s of [p.direct, p.proxied]) problems.push(...bookmarkProblems(s, template, { after: n, notAbove: current }));
    // The apiserver's bookmark 2 s before the timeout: the proxy must send one then too.
    const late = (s: WatchStream) => s.bookmarks.some((l) => s.endedAt - l.at <= 5_000);
    if (late(p.direct) && !late(p.proxied)) problems.push(`${p.name}: the apiserver sent a bookmark in the last 5 s before the timeout, the proxy did not`);
    const types = [...new Set(a.map((l) => l.type))].sort().join('/');
    report.push(`${p.name}: ${a.length} events (${types}), bookmarks direct ${p.direct.bookmarks.map((l) => `${l.rv}@${Math.round((l.at - p.direct.openedAt) / 1000)}s`).join(',') || '-'} proxy ${p.proxied.bookmarks.map((l) => `${l.rv}@${Math.round((l.at - p.proxied.openedAt) / 1000)}s`).join(',') || '-'}`);
  }
  for (const r of report) t.diagnostic(r);
  // The transitions the script is about really happened (else the comparison proves little).
  const typesOf = (name: string) => new Set(pairs.find((p) => p.name === name)?.direct.events.map((l) => l.type));
  for (const [name, want] of [['cm label in (move in/out)', ['ADDED', 'MODIFIED', 'DELETED']], ['pods label (move in/out)', ['ADDED', 'DELETED']],
    ['pods spec.nodeName (indexed)', ['ADDED', 'MODIFIED', 'DELETED']], ['pods status.phase', ['ADDED', 'DELETED']], ['nodes label (move out)', ['DELETED']]] as const) {
    for (const type of want) if (!typesOf(name).has(type)) problems.push(`${name}: no ${type} event from the apiserver: the script does not exercise it`);
  }
  assert.deepEqual(problems, []);
  const served = servedWatches(m1) - servedWatches(m0);
  t.diagnostic(`served from the cache: ${served} watches (${JSON.stringify(growthBy(m0, m1, 'kube_cache_proxy_cache_served_total', 'index'))}); forwarded: ${watchFallbacks(m1) - watchFallbacks(m0)}`);
  assert.equal(served, pairs.length, 'every proxied watch was served from the cache');
  assert.equal(watchFallbacks(m1) - watchFallbacks(m0), 0, 'no proxied watch was forwarded');
});

test('initial state: watch-list and legacy watches send the apiserver\'s ADDED lines and initial-events-end bookmark', { timeout: 300_000 }, async (t) => {
  const q = encodeURIComponent;
  const scopes: Array<[string, string, boolean]> = [
    ['cm namespace', `/api/v1/namespaces/${NS1}/configmaps`, false],
    ['cm label', `/api/v1/configmaps?labelSelector=${q(`run=${RUN},color`)}`, false],
    ['cm label cluster-wide', `/api/v1/configmaps?labelSelector=${q('color')}`, true],
    ['cm metadata.name', `/api/v1/namespaces/${NS1}/configmaps?fieldSelector=${q('metadata.name=cm-2')}`, false],
    ['cm metadata.name (none)', `/api/v1/namespaces/${NS1}/configmaps?fieldSelector=${q('metadata.name=nothing')}`, false],
    ['cm all', '/api/v1/configmaps', true],
    ['pods spec.nodeName', `/api/v1/pods?fieldSelector=${q(`spec.nodeName=${NODE_A}`)}`, false],
    ['pods label + namespace', `/api/v1/namespaces/${NS3}/pods?labelSelector=${q('tier in (front,back)')}`, false],
    ['pods all', '/api/v1/pods', true],
    ['nodes', '/api/v1/nodes', true],
    ['namespaces label', `/api/v1/namespaces?labelSelector=${q(`run=${RUN}`)}`, false],
  ];
  // The previous test left objects in every scope; make sure the cache has them all.
  const rv = rvOfObject(await must(cluster, direct(), `/api/v1/namespaces/${NS1}/configmaps`, 'GET', undefined, 200));
  const modes: Array<[string, string, boolean]> = [
    ['watch-list', `watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30`, true],
    // Exactly what a client-go 1.37 informer sends first.
    ['watch-list (client-go)', 'allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeout=6m44s&timeoutSeconds=404&watch=true', true],
    ['watch-list from N', `watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=${rv}&allowWatchBookmarks=true&timeoutSeconds=30`, true],
    ['legacy RV unset', 'watch=true&allowWatchBookmarks=true&timeoutSeconds=30', true],
    ['legacy RV=0', 'watch=1&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=30', true],
    ['legacy RV unset, no bookmarks', 'watch=true&timeoutSeconds=4', false],
    ['legacy RV=0, no bookmarks', 'watch=true&resourceVersion=0&timeoutSeconds=4', false],
  ];
  const m0 = await scrape(proxy.metricsUrl);
  let opened = 0;
  const problems: string[] = [];
  const report: string[] = [];
  const compare = async (mode: string, query: string, bookmark: boolean, scope: string, path: string): Promise<string | undefined> => {
    const p = withQuery(path, query);
    const d = new WatchStream(`${mode} ${scope} (direct)`, direct(), p, adminToken(cluster), agent);
    const x = new WatchStream(`${mode} ${scope} (proxy)`, proxy.url, p, adminToken(cluster), agent);
    opened++;
    const endBookmark = (ls: readonly Line[]) => ls.some((l) => l.type === 'BOOKMARK');
    if (bookmark) {
      await Promise.all([d.until(endBookmark, 30_000), x.until(endBookmark, 30_000)]);
      d.close();
      x.close();
    }
    await Promise.all([d.done, x.done]);
    const afterRV = rvOfObject(await must(cluster, direct(), '/api/v1/namespaces', 'GET', undefined, 200));
    for (const s of [d, x]) {
      if (s.status !== 200) return `${s.label}: status ${s.status}`;
      if (s.error) return `${s.label}: ${s.error}`;
    }
    if (x.contentType !== d.contentType) return `content-type ${x.contentType} != ${d.contentType}`;
    const initial = (s: WatchStream) => {
      const i = s.lines.findIndex((l) => l.type === 'BOOKMARK');
      return i < 0 ? s.lines : s.lines.slice(0, i);
    };
    const diff = lineDiff(initial(d), initial(x));
    if (diff) return diff;
    for (const s of [d, x]) if (initial(s).some((l) => l.type !== 'ADDED')) return `${s.label}: not only ADDED before the bookmark`;
    if (bookmark) {
      const bd = d.bookmarks[0];
      const bx = x.bookmarks[0];
      if (!bd || !bx) return `initial-events-end bookmark: direct ${bd ? 'yes' : 'no'}, proxy ${bx ? 'yes' : 'no'}`;
      if (bookmarkShape(bd) !== bookmarkShape(bx)) return `bookmark ${bookmarkShape(bx)} != ${bookmarkShape(bd)}`;
      if (!bd.bytes.includes('"k8s.io/initial-events-end":"true"')) return `the apiserver's bookmark is not an initial-events-end one: ${bd.bytes}`;
      const maxAdded = initial(x).reduce((m, l) => (l.rv !== undefined && l.rv > m ? l.rv : m), 0n);
      if (bx.rv === undefined || bx.rv < maxAdded || bx.rv > afterRV || (mode === 'watch-list from N' && bx.rv < rv)) return `proxy bookmark at ${bx.rv} (ADDED up to ${maxAdded}, apiserver at ${afterRV})`;
    } else if (d.bookmarks.length + x.bookmarks.length > 0) return 'a bookmark without allowWatchBookmarks';
    report.push(`${mode} ${scope}: ${initial(d).length} ADDED`);
    return undefined;
  };
  for (const [mode, query, bookmark] of modes) {
    await Promise.all(scopes.map(async ([scope, path, clusterWide]) => {
      // Nothing is written meanwhile in this test's namespaces, but other test files may write
      // elsewhere: a cluster-wide scope is compared again if it differed.
      let diff: string | undefined;
      for (let attempt = 1; attempt <= (clusterWide ? 3 : 1); attempt++) {
        diff = await compare(mode, query, bookmark, scope, path);
        if (!diff) break;
        log(`${mode} ${scope}: attempt ${attempt}: ${diff}`);
      }
      if (diff) problems.push(`${mode} ${scope}: ${diff}`);
    }));
  }
  for (const r of report.sort()) t.diagnostic(r);
  assert.deepEqual(problems, []);
  const m1 = await scrape(proxy.metricsUrl);
  assert.equal(servedWatches(m1) - servedWatches(m0), opened, 'every proxied watch was served from the cache');
  assert.equal(watchFallbacks(m1) - watchFallbacks(m0), 0, 'no proxied watch was forwarded');
});

const EXPIRED = /^\{"type":"ERROR","object":\{"kind":"Status","apiVersion":"v1","metadata":\{\},"status":"Failure","message":"too old resource version: ([0-9]+) \(([0-9]+)\)","reason":"Expired","code":410\}\}\n$/;

/** The same watch from an expired resourceVersion, direct and through the proxy: both one ERROR 410 line. */
async function compareExpired(c: TestCluster, base: string, p: TestProxy, path: string, a: Agent): Promise<void> {
  const d = new WatchStream(`${path} (direct)`, base, path, adminToken(c), a);
  const x = new WatchStream(`${path} (proxy)`, p.url, path, adminToken(c), a);
  await Promise.all([d.done, x.done]);
  for (const s of [d, x]) {
    assert.equal(s.status, 200, s.label);
    assert.equal(s.lines.length, 1, `${s.label}: ${s.lines.map((l) => l.bytes).join('')}`);
    assert.match(s.lines[0]?.bytes ?? '', EXPIRED, s.label);
  }
  const norm = (s: WatchStream) => (s.lines[0]?.bytes ?? '').replace(/ \([0-9]+\)/, ' (<oldest>)');
  assert.equal(norm(x), norm(d));
  assert.equal(x.contentType, d.contentType);
}

test('a resourceVersion older than the proxy\'s history: 200 and an ERROR 410 Expired event', { timeout: 120_000 }, async (t) => {
  const m0 = await scrape(proxy.metricsUrl);
  // RV 1: older than the proxy's first LIST. (The apiserver, whose watch cache listed at its start,
  // may still serve it: the relist test below compares the two once both expired it.)
  for (const path of [`/api/v1/namespaces/${NS1}/configmaps`, `/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE_A}`, '/api/v1/nodes']) {
    const x = new WatchStream(`${path} (proxy)`, proxy.url, withQuery(path, 'watch=true&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=20'), adminToken(cluster), agent);
    await x.done;
    assert.equal(x.status, 200, x.label);
    assert.equal(x.contentType, 'application/json');
    assert.equal(x.lines.length, 1, `${x.label}: ${x.lines.map((l) => l.bytes).join('')}`);
    const m = EXPIRED.exec(x.lines[0]?.bytes ?? '');
    assert.ok(m, x.lines[0]?.bytes);
    assert.equal(m[1], '1');
    assert.ok(BigInt(m[2] ?? '0') > 1n);
    assert.ok(x.endedAt - x.openedAt < 15_000, 'the proxy closed the watch after the ERROR');
  }
  const m1 = await scrape(proxy.metricsUrl);
  assert.equal(servedWatches(m1) - servedWatches(m0), 3, 'the 410s came from the cache');

  // Within the apiserver's history but older than a small proxy history (5 events): the proxy
  // answers 410 (the client relists), naming the oldest resourceVersion it can resume from.
  const defaults = cacheConfigFrom({});
  assert.ok(defaults);
  const small: CacheConfig = { ...defaults, watch: { ...defaults.watch, historyMaxEvents: 5 } };
  const p2 = await startTestProxy(cluster, { cache: small });
  try {
    await ready(p2);
    const w = new Writer(cluster, direct);
    const from = await w.configmap(NS2, `hist-0`, {});
    for (let i = 1; i <= 8; i++) await w.patch(`/api/v1/namespaces/${NS2}/configmaps/hist-0`, { data: { v: String(i) } });
    const path = withQuery(`/api/v1/namespaces/${NS2}/configmaps`, `watch=true&resourceVersion=${from}&timeoutSeconds=5`);
    // Wait until the small proxy's cache has seen the last write, so its history has moved on.
    const x = await (async () => {
      for (let i = 0; ; i++) {
        const s = new WatchStream('small history (proxy)', p2.url, path, adminToken(cluster), agent);
        await s.done;
        if (s.lines[0]?.type === 'ERROR' || i > 20) return s;
        await sleep(250);
      }
    })();
    const d = new WatchStream('small history (direct)', direct(), path, adminToken(cluster), agent);
    await d.done;
    assert.equal(d.events.length, 8, `the apiserver still has these events: ${d.lines.map((l) => l.type).join(',')}`);
    assert.equal(x.status, 200);
    assert.equal(x.lines.length, 1, x.lines.map((l) => l.bytes).join(''));
    const m = EXPIRED.exec(x.lines[0]?.bytes ?? '');
    assert.ok(m, x.lines[0]?.bytes);
    assert.equal(m[1], String(from));
    assert.ok(BigInt(m[2] ?? '0') > from, `the oldest resumable RV ${m[2] ?? ''} is after ${from}`);
    t.diagnostic(`small history: ${x.lines[0]?.bytes.trimEnd() ?? ''}`);
    // And from the oldest RV it names, the proxy resumes with exactly the apiserver's events.
    const oldest = m[2] ?? '';
    const again = withQuery(`/api/v1/namespaces/${NS2}/configmaps`, `watch=true&resourceVersion=${oldest}&timeoutSeconds=3`);
    const [d2, x2] = [new WatchStream('resume (direct)', direct(), again, adminToken(cluster), agent), new WatchStream('resume (proxy)', p2.url, again, adminToken(cluster), agent)];
    await Promise.all([d2.done, x2.done]);
    assert.equal(lineDiff(d2.events, x2.events), undefined);
    assert.ok(x2.events.length > 0);
  } finally {
    await p2.stop();
  }
});

test('a client watch through a relist of the proxy\'s cache stays open and ends in the apiserver\'s state', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-watch-relist-'));
  // Two apiservers: the proxy uses only the first; writes go to the second while the first is down.
  const c = await TestCluster.up({ dir, apiservers: 2 });
  const a0 = c.info.apiservers[0]?.url ?? '';
  const a1 = c.info.apiservers[1]?.url ?? '';
  let p: TestProxy | undefined;
  let okay = false;
  try {
    const ag = agentFor(c);
    const ns = `wr-${RUN}`;
    const w = new Writer(c, () => a0);
    await must(c, a0, '/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 201);
    for (let i = 0; i < 12; i++) await w.configmap(ns, `cm-${i}`, { color: i % 2 ? 'red' : 'blue' });
    for (let i = 0; i < 6; i++) await w.pod(ns, `p-${i}`, { color: i % 2 ? 'red' : 'blue' }, i < 3 ? 'node-x' : undefined);
    p = await startTestProxy(c, { cache: cacheConfigFrom({}), upstreams: [a0] });
    await ready(p);
    const m0 = await scrape(p.metricsUrl);

    // Client watches through the proxy: watch-lists (initial state, then events), and one from N.
    const atN = await must(c, a0, `/api/v1/namespaces/${ns}/configmaps`, 'GET', undefined, 200);
    const n = rvOfObject(atN);
    const watches = [
      { name: 'configmaps', list: `/api/v1/namespaces/${ns}/configmaps` },
      { name: 'configmaps color=red', list: `/api/v1/namespaces/${ns}/configmaps?labelSelector=color%3Dred` },
      { name: 'pods', list: `/api/v1/namespaces/${ns}/pods` },
      { name: 'pods spec.nodeName', list: `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-x` },
    ].map((x) => ({
      ...x,
      stream: new WatchStream(x.name, p?.url ?? '', withQuery(x.list, 'watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=900'), adminToken(c), ag),
    }));
    const fromN = new WatchStream('configmaps from N', p.url, withQuery(`/api/v1/namespaces/${ns}/configmaps`, `watch=true&resourceVersion=${n}&allowWatchBookmarks=true&timeoutSeconds=900`), adminToken(c), ag);
    for (const x of watches) assert.ok(await x.stream.until((ls) => ls.some((l) => l.type === 'BOOKMARK'), 30_000), `${x.name}: initial events`);

    // Changes the proxy sees, then apiserver-0 goes down and changes go to apiserver-1.
    await w.patch(`/api/v1/namespaces/${ns}/configmaps/cm-0`, { data: { v: 'seen' } });
    await w.delete(`/api/v1/namespaces/${ns}/configmaps/cm-1`);
    await sleep(1_000);
    await c.stopApiserver(0, 'SIGKILL');
    const w1 = new Writer(c, () => a1);
    const cm = (name: string) => `/api/v1/namespaces/${ns}/configmaps/${name}`;
    const pod = (name: string) => `/api/v1/namespaces/${ns}/pods/${name}`;
    await w1.configmap(ns, 'cm-new-0', { color: 'red' });
    await w1.configmap(ns, 'cm-new-1', { color: 'blue' });
    await w1.patch(cm('cm-2'), { data: { v: 'missed' } });
    await w1.patch(cm('cm-3'), { metadata: { labels: { color: 'blue' } } }); // out of color=red
    await w1.patch(cm('cm-4'), { metadata: { labels: { color: 'red' } } }); // into color=red
    await w1.delete(cm('cm-5'));
    await w1.delete(cm('cm-6'));
    await w1.configmap(ns, 'cm-short', {});
    await w1.delete(cm('cm-short')); // created and deleted unseen: no event at all
    await w1.delete(pod('p-0'));
    await w1.pod(ns, 'p-new', { color: 'red' }, 'node-x');
    await w1.do(`${pod('p-4')}/binding`, 'POST', { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'p-4' }, target: { apiVersion: 'v1', kind: 'Node', name: 'node-x' } }, 201);
    await w1.patch(pod('p-5'), { metadata: { labels: { color: 'green' } } });
    const compacted = await c.compactEtcd();
    log(`compacted etcd at ${compacted}; restarting apiserver-0`);
    await c.startApiserver(0);

    // The proxy's watches get 410 and relist; the diff reaches the client watches as events.
    const deadline = Date.now() + 120_000;
    const relisted = async () => {
      const m = await scrape(p?.metricsUrl ?? '');
      return ['configmaps', 'pods'].every((r) => total(m, 'kube_cache_proxy_cache_relists_total', (l) => l['resource'] === r && l['reason'] === 'expired') > total(m0, 'kube_cache_proxy_cache_relists_total', (l) => l['resource'] === r && l['reason'] === 'expired'));
    };
    while (!(await relisted())) {
      assert.ok(Date.now() < deadline, 'the proxy did not relist configmaps and pods on 410 within 120 s');
      await sleep(250);
    }
    // The restarted apiserver's watch cache and the relisted proxy both expire an old resourceVersion.
    await compareExpired(c, a0, p, withQuery(`/api/v1/namespaces/${ns}/configmaps`, 'watch=true&resourceVersion=1&allowWatchBookmarks=true'), ag);
    // And more changes after the relist, through the restarted apiserver.
    await w.patch(cm('cm-7'), { data: { v: 'after' } });
    await w.delete(cm('cm-8'));
    await w.configmap(ns, 'cm-after', { color: 'red' });

    // Each watch-list's events applied to nothing, the watch from N's to the LIST at N.
    for (const x of [...watches.map((y) => ({ ...y, initial: new Map<string, string>() })), { name: 'configmaps from N', list: `/api/v1/namespaces/${ns}/configmaps`, stream: fromN, initial: itemsState(atN) }]) {
      const want = await listState(c, a0, x.list);
      let got = new Map<string, string>();
      const converged = await x.stream.until((ls) => {
        got = applyEvents(ls, x.initial);
        return stateDiff(got, want) === undefined;
      }, 30_000);
      assert.ok(converged, `${x.name}: events applied to the initial state differ from a direct LIST: ${stateDiff(got, want) ?? ''}`);
      assert.equal(x.stream.ended, false, `${x.name}: the client watch was closed`);
      assert.equal(x.stream.error, undefined);
      assert.ok(!x.stream.lines.some((l) => l.type === 'ERROR'), `${x.name}: an ERROR event`);
      assert.deepEqual(bookmarkProblems(x.stream, undefined, { after: 0n, notAbove: rvOfObject(await must(c, a0, '/api/v1/namespaces', 'GET', undefined, 200)) }), []);
      // As from the apiserver, events after the initial state come at increasing resourceVersions
      // (a client resumes from the last it saw: two at one resourceVersion would lose the second).
      assert.deepEqual(orderProblems(x.stream), []);
      t.diagnostic(`${x.name}: ${x.stream.lines.length} lines (${x.stream.events.length} events, ${x.stream.bookmarks.length} bookmarks), ${want.size} objects at the end`);
    }
    const m1 = await scrape(p.metricsUrl);
    assert.equal(servedWatches(m1) - servedWatches(m0), watches.length + 2, 'the client watches (and the expired one) were served from the cache');
    assert.equal(total(m1, 'kube_cache_proxy_cache_watchers_closed_total') - total(m0, 'kube_cache_proxy_cache_watchers_closed_total'), 0, 'no client watch was closed');
    t.diagnostic(`relists ${JSON.stringify(growthBy(m0, m1, 'kube_cache_proxy_cache_relists_total', 'reason'))}; watch restarts ${JSON.stringify(growthBy(m0, m1, 'kube_cache_proxy_cache_watch_restarts_total', 'reason'))}`);
    for (const x of [...watches.map((y) => y.stream), fromN]) x.close();
    okay = true;
  } finally {
    await p?.stop();
    await c.down();
    if (okay) rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`cluster logs kept in ${dir}/logs`);
  }
});

/** A watch's lines applied in order to an empty state: key → the object (without kind/apiVersion). */
function applyEvents(lines: readonly Line[], initial: ReadonlyMap<string, string>): Map<string, string> {
  const state = new Map(initial);
  for (const l of lines) {
    if (l.type === 'BOOKMARK') continue;
    const meta = (l.object['metadata'] ?? {}) as Record<string, unknown>;
    const key = `${String(meta['namespace'] ?? '')}/${String(meta['name'] ?? '')}`;
    if (l.type === 'DELETED') state.delete(key);
    else if (l.type === 'ADDED' || l.type === 'MODIFIED') {
      const { kind: _k, apiVersion: _a, ...rest } = l.object;
      state.set(key, JSON.stringify(rest));
    } else state.set(`!${l.type}`, l.bytes);
  }
  return state;
}

async function listState(c: TestCluster, base: string, path: string): Promise<Map<string, string>> {
  return itemsState(await must(c, base, path, 'GET', undefined, 200));
}

/** A LIST body's items: key → the item's JSON. */
function itemsState(body: Record<string, unknown>): Map<string, string> {
  const items = Array.isArray(body['items']) ? (body['items'] as Array<Record<string, unknown>>) : [];
  return new Map(items.map((i) => {
    const meta = (i['metadata'] ?? {}) as Record<string, unknown>;
    return [`${String(meta['namespace'] ?? '')}/${String(meta['name'] ?? '')}`, JSON.stringify(i)];
  }));
}

function stateDiff(got: Map<string, string>, want: Map<string, string>): string | undefined {
  const out: string[] = [];
  for (const [k, v] of want) if (got.get(k) !== v) out.push(`${k}: ${got.has(k) ? 'differs' : 'missing'}`);
  for (const k of got.keys()) if (!want.has(k)) out.push(`${k}: not in the LIST`);
  return out.length > 0 ? out.slice(0, 8).join('; ') : undefined;
}
