// 5,000 concurrent client watches served from one proxy's cache: kubelet-like watches of one node's
// pods (fieldSelector=spec.nodeName over 100 nodes, some with a label selector too), namespace
// watches, a few unfiltered ones, half resuming from a LIST's resourceVersion and half watch-lists.
// Pods are created, relabelled and deleted; every watcher must get exactly the events its selector
// calls for (types, objects, resourceVersions, in order), nothing more. One watcher reads nothing
// while big ConfigMaps are written into its namespace: it alone is closed as slow (two watchers of
// the same ConfigMaps that do read get every event), and its connection is cut at once (reading
// again, it finds the connection closed, not held open for it). Reported: the time to open the watches, the proxy's memory per watcher, delivery time.
// Also: a client that leaves while its watch waits for the cache leaves no watcher behind.
//
// The watch clients run in a child process (this file, forked with KCP_WATCH_SCALE_CLIENTS=1), so
// that the proxy's metrics (this process) measure the proxy and not 5,000 client connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Pool } from 'undici';
import { LineSplitter } from '../../cache/line-splitter.js';
import { scrape, total, type Sample } from '../helpers/cache-workload.js';

const ROLE_ENV = 'KCP_WATCH_SCALE_CLIENTS';
const WATCHERS = 5_000;
const NODES = 100;
const NAMESPACES = 10;
const PODS = 100;
/** A watcher's queue limit for this proxy: the slow watcher trips it after a few big ConfigMaps. */
const MAX_QUEUED_BYTES = 4 << 20;
const BLOB_BYTES = 512 * 1024;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The client side (child process): opens the watches, records what each one receives.

interface WatchSpecWire {
  readonly id: number;
  readonly path: string;
  /** The resourceVersion it resumes from; undefined: a watch-list (initial events, then the end bookmark). */
  readonly fromRV: string | undefined;
}

type ClientRequest =
  | { readonly op: 'open'; readonly origin: string; readonly ca: string; readonly token: string; readonly mine: string; readonly watches: readonly WatchSpecWire[]; readonly concurrency: number }
  | { readonly op: 'openSlow'; readonly path: string }
  | { readonly op: 'counts' }
  | { readonly op: 'report' }
  | { readonly op: 'drainSlow'; readonly timeoutMs: number }
  | { readonly op: 'close' };

interface OpenReply { readonly ms: number; readonly failures: readonly string[]; readonly headersMsP50: number; readonly headersMsMax: number }
interface CountsReply { readonly mine: readonly number[]; readonly ended: readonly number[]; readonly lines: number }
interface WatchRecord {
  readonly id: number;
  status: number;
  /** Events for this run's objects: [type, namespace/name, resourceVersion]. */
  readonly events: Array<[string, string, string]>;
  others: number;
  bookmarks: number;
  initialEnd: boolean;
  ended: string | undefined;
  readonly violations: string[];
}
interface ReportReply { readonly watchers: readonly WatchRecord[] }
interface SlowReply { readonly status: string }
interface DrainReply { readonly clean: boolean; readonly bytes: number; readonly how: string }

async function runClients(): Promise<void> {
  const records: WatchRecord[] = [];
  let pool: Pool | undefined;
  let origin = '';
  let ca = '';
  let token = '';
  let lines = 0;
  let slow: TLSSocket | undefined;

  const onLine = (r: WatchRecord, st: { last: bigint; initial: boolean }, mine: string, raw: Buffer) => {
    lines++;
    const ev = record(JSON.parse(raw.toString('utf8')));
    const type = String(ev?.['type']);
    const meta = record(record(ev?.['object'])?.['metadata']);
    const rvText = meta?.['resourceVersion'];
    const rv = typeof rvText === 'string' && /^[0-9]+$/.test(rvText) ? BigInt(rvText) : undefined;
    if (rv === undefined) {
      r.violations.push(`${type} without a resourceVersion: ${raw.toString('utf8', 0, 200)}`);
      return;
    }
    if (type === 'BOOKMARK') {
      r.bookmarks++;
      if (rv < st.last) r.violations.push(`bookmark at ${rv} after ${st.last}`);
      st.last = rv;
      if (record(meta?.['annotations'])?.['k8s.io/initial-events-end'] === 'true') {
        if (!st.initial) r.violations.push('a second initial-events-end bookmark');
        st.initial = false;
        r.initialEnd = true;
      }
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') {
      r.violations.push(`event ${type}: ${raw.toString('utf8', 0, 300)}`);
      return;
    }
    if (st.initial) {
      if (type !== 'ADDED') r.violations.push(`${type} among the initial events`);
    } else {
      if (rv <= st.last) r.violations.push(`${type} at ${rv} after ${st.last}`);
      st.last = rv;
    }
    const ns = typeof meta?.['namespace'] === 'string' ? meta['namespace'] : '';
    if (ns.startsWith(mine)) r.events.push([type, `${ns}/${String(meta?.['name'])}`, rvText as string]);
    else r.others++;
  };

  const open = async (req: Extract<ClientRequest, { op: 'open' }>): Promise<OpenReply> => {
    origin = req.origin;
    ca = req.ca;
    token = req.token;
    pool = new Pool(origin, {
      connections: req.watches.length + 16,
      pipelining: 1,
      connect: { ca, rejectUnauthorized: true },
      bodyTimeout: 0,
      headersTimeout: 300_000,
      keepAliveTimeout: 600_000,
    });
    const p = pool;
    const failures: string[] = [];
    const headersMs: number[] = [];
    let next = 0;
    const started = performance.now();
    const openOne = async (w: WatchSpecWire) => {
      const r: WatchRecord = { id: w.id, status: 0, events: [], others: 0, bookmarks: 0, initialEnd: false, ended: undefined, violations: [] };
      records[w.id] = r;
      const st = { last: w.fromRV === undefined ? 0n : BigInt(w.fromRV), initial: w.fromRV === undefined };
      const t0 = performance.now();
      try {
        const res = await p.request({ path: w.path, method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
        headersMs.push(performance.now() - t0);
        r.status = res.statusCode;
        if (res.statusCode !== 200) {
          failures.push(`${w.path}: ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`);
          r.ended = `status ${res.statusCode}`;
          return;
        }
        if (res.headers['audit-id'] !== undefined) failures.push(`${w.path}: forwarded to the apiserver, not served from the cache`);
        const splitter = new LineSplitter();
        res.body.on('data', (chunk: Buffer) => {
          for (const line of splitter.push(chunk)) {
            try {
              onLine(r, st, req.mine, line);
            } catch (err) {
              r.violations.push(`unparsable line (${String(err)}): ${line.toString('utf8', 0, 200)}`);
            }
          }
        });
        res.body.on('end', () => { r.ended ??= 'end of stream'; });
        res.body.on('error', (err: Error) => { r.ended ??= `error: ${err.message}`; });
      } catch (err) {
        r.ended = `request failed: ${String(err)}`;
        failures.push(`${w.path}: ${String(err)}`);
      }
    };
    await Promise.all(Array.from({ length: req.concurrency }, async () => {
      while (next < req.watches.length) {
        const w = req.watches[next++];
        if (w) await openOne(w);
      }
    }));
    const ms = performance.now() - started;
    headersMs.sort((a, b) => a - b);
    return { ms, failures: failures.slice(0, 20), headersMsP50: headersMs[Math.floor(headersMs.length / 2)] ?? 0, headersMsMax: headersMs[headersMs.length - 1] ?? 0 };
  };

  /** A watch on a raw TLS connection that, once the response headers are in, reads nothing. */
  const openSlow = (path: string): Promise<SlowReply> => new Promise((resolve, reject) => {
    const u = new URL(origin);
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca });
    slow = s;
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      s.pause();
      resolve({ status: head.slice(0, head.indexOf('\r\n')) });
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('secureConnect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${token}\r\nAccept: application/json\r\n\r\n`);
    });
  });

  /** The slow watcher reads again: what it gets, and how its stream ends (cut by the proxy, or still open). */
  const drainSlow = (timeoutMs: number): Promise<DrainReply> => new Promise((resolve) => {
    const s = slow;
    if (!s) {
      resolve({ clean: false, bytes: 0, how: 'no slow watcher' });
      return;
    }
    let bytes = 0;
    let tail = '';
    const finish = (how: string) => {
      clearTimeout(timer);
      s.removeAllListeners('data');
      s.destroy();
      resolve({ clean: tail.endsWith('\r\n0\r\n\r\n'), bytes, how });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      tail = (tail + chunk.toString('latin1', Math.max(0, chunk.length - 16))).slice(-16);
      if (tail.endsWith('\r\n0\r\n\r\n')) finish('last chunk');
    });
    s.once('end', () => finish('end'));
    s.once('close', () => finish('close'));
    s.resume();
  });

  const handle = async (req: ClientRequest): Promise<unknown> => {
    switch (req.op) {
      case 'open':
        return open(req);
      case 'openSlow':
        return openSlow(req.path);
      case 'counts':
        return {
          mine: records.map((r) => r.events.length),
          ended: records.filter((r) => r.ended !== undefined).map((r) => r.id),
          lines,
        } satisfies CountsReply;
      case 'report':
        return { watchers: records } satisfies ReportReply;
      case 'drainSlow':
        return drainSlow(req.timeoutMs);
      case 'close':
        slow?.destroy();
        await pool?.destroy();
        return {};
    }
  };
  process.on('message', (m: unknown) => {
    const msg = record(m);
    const seq = msg?.['seq'];
    const req = msg?.['req'] as ClientRequest | undefined;
    if (typeof seq !== 'number' || !req) return;
    handle(req).then(
      (reply) => process.send?.({ seq, reply }),
      (err: unknown) => process.send?.({ seq, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// The test (this process runs the proxy).

class Clients {
  readonly #child: ChildProcess;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor() {
    const env: NodeJS.ProcessEnv = { ...process.env, [ROLE_ENV]: '1' };
    delete env['NODE_TEST_CONTEXT'];
    this.#child = fork(fileURLToPath(import.meta.url), [], { env, execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.#child.on('message', (m: unknown) => {
      const msg = record(m);
      const seq = msg?.['seq'];
      if (typeof seq !== 'number') return;
      const p = this.#pending.get(seq);
      this.#pending.delete(seq);
      if (typeof msg?.['error'] === 'string') p?.reject(new Error(`watch clients: ${msg['error']}`));
      else p?.resolve(msg?.['reply']);
    });
    this.#child.on('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`watch clients exited (${String(code)})`));
      this.#pending.clear();
    });
  }

  ask<T>(req: ClientRequest): Promise<T> {
    const seq = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(seq, { resolve: (v) => resolve(v as T), reject });
      this.#child.send({ seq, req });
    });
  }

  async close(): Promise<void> {
    if (this.#child.exitCode === null) {
      await Promise.race([this.ask({ op: 'close' }).catch(() => undefined), sleep(10_000)]);
      this.#child.kill('SIGKILL');
    }
  }
}

let gcFn: (() => void) | undefined;
function gc(): void {
  if (!gcFn) {
    const exposed = (globalThis as { gc?: unknown }).gc;
    if (typeof exposed === 'function') gcFn = () => { exposed(); };
    else {
      setFlagsFromString('--expose-gc');
      const fn: unknown = runInNewContext('gc');
      if (typeof fn !== 'function') throw new Error('no gc function');
      gcFn = () => { fn(); };
    }
  }
  gcFn();
}

type Kind = 'pods' | 'configmaps';

interface Spec {
  readonly id: number;
  readonly kind: Kind;
  readonly path: string;
  readonly namespace: string | undefined;
  readonly node: string | undefined;
  /** labelSelector=color=red */
  readonly red: boolean;
  readonly fromRV: string | undefined;
  readonly role: 'node' | 'namespace' | 'all' | 'control' | 'slow';
}

interface Write {
  readonly kind: Kind;
  readonly op: 'create' | 'update' | 'delete';
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly before: string | undefined;
  readonly after: string | undefined;
  /** The resourceVersion of the object in the answer (for a DELETE: the DELETED event's). */
  readonly rv: string | undefined;
}

function matches(s: Spec, kind: Kind, namespace: string, node: string, color: string | undefined): boolean {
  return color !== undefined && s.kind === kind && (s.namespace === undefined || s.namespace === namespace) &&
    (s.node === undefined || s.node === node) && (!s.red || color === 'red');
}

/** What the apiserver would send this watcher for the writes, in order: [type, key, rv or undefined]. */
function expectedEvents(s: Spec, writes: readonly Write[]): Array<[string, string, string | undefined]> {
  const out: Array<[string, string, string | undefined]> = [];
  for (const w of writes) {
    const key = `${w.namespace}/${w.name}`;
    const was = matches(s, w.kind, w.namespace, w.node, w.before);
    const is = matches(s, w.kind, w.namespace, w.node, w.after);
    if (w.op === 'delete') {
      // A pod bound to a node is deleted in two steps even with gracePeriodSeconds=0: MODIFIED
      // (deletionTimestamp set), then DELETED, whose resourceVersion the DELETE answers with.
      if (was && w.kind === 'pods') out.push(['MODIFIED', key, undefined]);
      if (was) out.push(['DELETED', key, w.rv]);
    } else if (was && is) out.push(['MODIFIED', key, w.rv]);
    else if (is) out.push(['ADDED', key, w.rv]);
    // Leaving the selector: DELETED at the update's resourceVersion.
    else if (was) out.push(['DELETED', key, w.rv]);
  }
  return out;
}

const metric = (m: readonly Sample[], name: string, where: (l: Readonly<Record<string, string>>) => boolean = () => true) => total(m, name, where);

/** Runs `f` over `xs` with at most `n` at a time. */
async function pool<T>(xs: readonly T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < xs.length) {
      const x = xs[i++] as T;
      await f(x);
    }
  }));
}

if (process.env[ROLE_ENV] === '1') {
  await runClients();
} else {
  const { sharedCluster, startTestProxy } = await import('../helpers/env.js');
  const { call, closeAgents } = await import('../helpers/http.js');
  const { cacheConfigFrom } = await import('../../proxy/cache-options.js');

  test('5,000 watches from one proxy: each gets exactly its events; a slow one is closed alone', { timeout: 900_000 }, async (t) => {
    const cluster = sharedCluster();
    const direct = cluster.info.apiservers[0]?.url ?? '';
    const run = randomBytes(3).toString('hex');
    const prefix = `ws-${run}`;
    const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `${prefix}-n${i}`);
    const slowNs = `${prefix}-slow`;
    const nodes = Array.from({ length: NODES }, (_, i) => `${prefix}-node-${String(i).padStart(3, '0')}`);
    const enc = encodeURIComponent;
    const ok = (r: { status: number; text(): string }, status: number, what: string) => assert.equal(r.status, status, `${what}: ${r.status} ${r.text().slice(0, 300)}`);
    const rvOf = (v: unknown): string => {
      const rv = record(record(v)?.['metadata'])?.['resourceVersion'];
      assert.ok(typeof rv === 'string', `no resourceVersion in ${JSON.stringify(v).slice(0, 200)}`);
      return rv;
    };

    for (const ns of [...namespaces, slowNs]) ok(await call(cluster, direct, '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ metadata: { name: ns } }) }), 201, `namespace ${ns}`);

    const base = cacheConfigFrom({});
    assert.ok(base);
    const proxy = await startTestProxy(cluster, { cache: { ...base, watch: { ...base.watch, watcherMaxQueuedBytes: MAX_QUEUED_BYTES } } });
    const clients = new Clients();
    try {
      const p = proxy;
      const deadline = Date.now() + 60_000;
      while ((await fetch(`${p.metricsUrl}/readyz`)).status !== 200) {
        assert.ok(Date.now() < deadline, 'proxy not ready in 60 s');
        await sleep(100);
      }
      // A watch is served from the cache once the reflector has a bookmark sample: wait for one.
      const servedWatches = async () => metric(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_served_total', (l) => l['verb'] === 'watch');
      for (const resource of ['pods', 'configmaps']) {
        for (;;) {
          assert.ok(Date.now() < deadline + 30_000, `watches of ${resource} not served from the cache`);
          const before = await servedWatches();
          const r = await call(cluster, p.url, `/api/v1/namespaces/${slowNs}/${resource}?watch=1&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=1`);
          ok(r, 200, 'warm-up watch');
          if ((await servedWatches()) > before) break;
          await sleep(200);
        }
      }

      const podsRV = rvOf((await call(cluster, direct, '/api/v1/pods?limit=1')).json());
      const cmRV = rvOf((await call(cluster, direct, `/api/v1/namespaces/${slowNs}/configmaps`)).json());
      // The mix: per node 38-39 watchers (a quarter also with color=red), per namespace 95 (a third with
      // color=red), 47 unfiltered (some with color=red), 2 readers of the big ConfigMaps; half of
      // each resume from a LIST's resourceVersion, half are watch-lists. Plus the slow watcher.
      const specs: Spec[] = [];
      const add = (s: Omit<Spec, 'id' | 'path' | 'fromRV'>, i: number) => {
        const fromRV = i % 2 === 0 ? (s.kind === 'pods' ? podsRV : cmRV) : undefined;
        const q = new URLSearchParams({ watch: '1', allowWatchBookmarks: 'true' });
        if (fromRV !== undefined) q.set('resourceVersion', fromRV);
        if (s.node !== undefined) q.set('fieldSelector', `spec.nodeName=${s.node}`);
        if (s.red) q.set('labelSelector', 'color=red');
        const path = `/api/v1${s.namespace !== undefined ? `/namespaces/${s.namespace}` : ''}/${s.kind}?${q.toString()}`;
        specs.push({ ...s, id: specs.length, path, fromRV });
      };
      const unfiltered = 47;
      const perNamespace = 95;
      const nodeWatchers = WATCHERS - 1 - 2 - unfiltered - perNamespace * NAMESPACES;
      for (let i = 0; i < nodeWatchers; i++) add({ kind: 'pods', namespace: undefined, node: nodes[i % NODES], red: Math.floor(i / NODES) % 4 === 3, role: 'node' }, Math.floor(i / NODES));
      for (let i = 0; i < perNamespace * NAMESPACES; i++) add({ kind: 'pods', namespace: namespaces[i % NAMESPACES], node: undefined, red: Math.floor(i / NAMESPACES) % 3 === 2, role: 'namespace' }, Math.floor(i / NAMESPACES));
      for (let i = 0; i < unfiltered; i++) add({ kind: 'pods', namespace: undefined, node: undefined, red: i % 4 === 3, role: 'all' }, i);
      for (let i = 0; i < 2; i++) add({ kind: 'configmaps', namespace: slowNs, node: undefined, red: false, role: 'control' }, i);
      // Shuffled: kinds interleave as they would in a real cluster.
      const order = specs.map((s) => s.id).sort(() => Math.random() - 0.5);

      const memory = async () => {
        for (let i = 0; i < 4; i++) {
          gc();
          await sleep(50);
        }
        const m = await scrape(p.metricsUrl);
        return {
          rss: metric(m, 'process_resident_memory_bytes'),
          heap: metric(m, 'nodejs_heap_size_used_bytes'),
          external: metric(m, 'nodejs_external_memory_bytes'),
          cpu: metric(m, 'process_cpu_seconds_total'),
        };
      };
      const m0 = await scrape(p.metricsUrl);
      const mem0 = await memory();
      const opened = await clients.ask<OpenReply>({
        op: 'open', origin: p.url, ca: readFileSync(cluster.info.caFile, 'utf8'), token: cluster.info.users.admin.token ?? '', mine: prefix,
        watches: order.map((id) => ({ id, path: specs[id]?.path ?? '', fromRV: specs[id]?.fromRV })), concurrency: 64,
      });
      const slowSpec: Spec = {
        id: -1, kind: 'configmaps', namespace: slowNs, node: undefined, red: false, role: 'slow', fromRV: cmRV,
        path: `/api/v1/namespaces/${slowNs}/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=${cmRV}`,
      };
      const slow = await clients.ask<SlowReply>({ op: 'openSlow', path: slowSpec.path });
      assert.deepEqual(opened.failures, []);
      assert.match(slow.status, /^HTTP\/1\.1 200/);
      await sleep(1_000);
      const mem1 = await memory();
      const m1 = await scrape(p.metricsUrl);
      const watchers = (resource: string, m: readonly Sample[]) => metric(m, 'kube_cache_proxy_cache_watchers', (l) => l['resource'] === resource);
      const served = metric(m1, 'kube_cache_proxy_cache_served_total', (l) => l['verb'] === 'watch') - metric(m0, 'kube_cache_proxy_cache_served_total', (l) => l['verb'] === 'watch');
      const fallbacks = metric(m1, 'kube_cache_proxy_cache_fallbacks_total', (l) => l['verb'] === 'watch') - metric(m0, 'kube_cache_proxy_cache_fallbacks_total', (l) => l['verb'] === 'watch');
      const perWatcher = (a: number, b: number) => `${((b - a) / WATCHERS / 1024).toFixed(1)} KiB`;
      t.diagnostic(`opened ${WATCHERS} watches in ${(opened.ms / 1000).toFixed(1)} s (64 at a time; to response headers p50 ${opened.headersMsP50.toFixed(0)} ms, max ${opened.headersMsMax.toFixed(0)} ms); ` +
        `proxy CPU ${(mem1.cpu - mem0.cpu).toFixed(1)} s`);
      t.diagnostic(`proxy memory per watcher: RSS ${perWatcher(mem0.rss, mem1.rss)}, V8 heap ${perWatcher(mem0.heap, mem1.heap)}, external ${perWatcher(mem0.external, mem1.external)} ` +
        `(RSS ${(mem0.rss / 2 ** 20).toFixed(0)} → ${(mem1.rss / 2 ** 20).toFixed(0)} MiB, heap ${(mem0.heap / 2 ** 20).toFixed(0)} → ${(mem1.heap / 2 ** 20).toFixed(0)} MiB)`);
      assert.equal(served, WATCHERS, `watches served from the cache (forwarded: ${fallbacks})`);
      assert.equal(watchers('pods', m1) - watchers('pods', m0), WATCHERS - 3);
      assert.equal(watchers('configmaps', m1) - watchers('configmaps', m0), 3);

      // The churn: 100 pods created (one per node, spread over the namespaces, red and blue), every
      // one relabelled (red <-> blue: a red watcher sees it arrive or leave), half deleted. At the
      // same time big ConfigMaps are written until the slow watcher is closed, then a few more.
      const writes: Write[] = [];
      const pods = Array.from({ length: PODS }, (_, i) => ({ name: `p${String(i).padStart(3, '0')}`, namespace: namespaces[i % NAMESPACES] ?? '', node: nodes[i % NODES] ?? '', color: i % 2 === 0 ? 'red' : 'blue' }));
      const churnStarted = performance.now();
      const slowClosed = async () => metric(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_watchers_closed_total', (l) => l['reason'] === 'slow') -
        metric(m0, 'kube_cache_proxy_cache_watchers_closed_total', (l) => l['reason'] === 'slow');
      const podChurn = (async () => {
        const phases: Array<Write['op']> = ['create', 'update', 'delete'];
        for (const op of phases) {
          const batch: Write[] = [];
          await pool(op === 'delete' ? pods.slice(0, PODS / 2) : pods, 8, async (pod) => {
            const base = `/api/v1/namespaces/${pod.namespace}/pods`;
            if (op === 'create') {
              const r = await call(cluster, direct, base, { method: 'POST', body: JSON.stringify({ metadata: { name: pod.name, labels: { run, color: pod.color } }, spec: { nodeName: pod.node, containers: [{ name: 'c', image: 'registry.example/demo:1' }] } }) });
              ok(r, 201, `create ${pod.name}`);
              batch.push({ kind: 'pods', op, namespace: pod.namespace, name: pod.name, node: pod.node, before: undefined, after: pod.color, rv: rvOf(r.json()) });
            } else if (op === 'update') {
              const color = pod.color === 'red' ? 'blue' : 'red';
              const r = await call(cluster, direct, `${base}/${pod.name}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ metadata: { labels: { color } } }) });
              ok(r, 200, `update ${pod.name}`);
              batch.push({ kind: 'pods', op, namespace: pod.namespace, name: pod.name, node: pod.node, before: pod.color, after: color, rv: rvOf(r.json()) });
              pod.color = color;
            } else {
              const r = await call(cluster, direct, `${base}/${pod.name}?gracePeriodSeconds=0`, { method: 'DELETE' });
              ok(r, 200, `delete ${pod.name}`);
              batch.push({ kind: 'pods', op, namespace: pod.namespace, name: pod.name, node: pod.node, before: pod.color, after: undefined, rv: rvOf(r.json()) });
            }
          });
          // Per object the phases are ordered; within a phase, by resourceVersion where known.
          batch.sort((a, b) => (a.rv === undefined || b.rv === undefined ? 0 : BigInt(a.rv) < BigInt(b.rv) ? -1 : 1));
          writes.push(...batch);
        }
      })();
      let bigWrites = 0;
      let trippedAfter = 0;
      const bigChurn = (async () => {
        let extra = 3;
        for (let i = 0; i < 80 && extra > 0; i++) {
          const blob = randomBytes(BLOB_BYTES * 3 / 4).toString('base64');
          const base = `/api/v1/namespaces/${slowNs}/configmaps`;
          const r = i === 0
            ? await call(cluster, direct, base, { method: 'POST', body: JSON.stringify({ metadata: { name: 'big' }, data: { blob } }) })
            : await call(cluster, direct, `${base}/big`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ data: { blob } }) });
          ok(r, i === 0 ? 201 : 200, `big write ${i}`);
          writes.push({ kind: 'configmaps', op: i === 0 ? 'create' : 'update', namespace: slowNs, name: 'big', node: '', before: i === 0 ? undefined : 'none', after: 'none', rv: rvOf(r.json()) });
          bigWrites++;
          if (trippedAfter > 0) extra--;
          else if ((await slowClosed()) > 0) trippedAfter = bigWrites;
        }
      })();
      await Promise.all([podChurn, bigChurn]);
      const churnMs = performance.now() - churnStarted;
      assert.ok(trippedAfter > 0, `the slow watcher was not closed after ${bigWrites} ConfigMaps of ${BLOB_BYTES / 1024} KiB`);

      // Every watcher gets its events (wait for the counts, then compare the events themselves).
      const expected = specs.map((s) => expectedEvents(s, writes));
      const expectedLines = expected.reduce((n, e) => n + e.length, 0);
      const waitStarted = performance.now();
      let counts = await clients.ask<CountsReply>({ op: 'counts' });
      const short = () => specs.filter((s) => (counts.mine[s.id] ?? 0) < (expected[s.id]?.length ?? 0));
      while (short().length > 0 && performance.now() - waitStarted < 60_000) {
        await sleep(250);
        counts = await clients.ask<CountsReply>({ op: 'counts' });
      }
      const deliveredMs = performance.now() - churnStarted;
      const report = await clients.ask<ReportReply>({ op: 'report' });
      const m2 = await scrape(p.metricsUrl);

      const problems: string[] = [];
      const byRole = new Map<string, { watchers: number; events: number }>();
      for (const s of specs) {
        const r = report.watchers[s.id];
        const want = expected[s.id] ?? [];
        const role = byRole.get(s.role) ?? { watchers: 0, events: 0 };
        role.watchers++;
        role.events += want.length;
        byRole.set(s.role, role);
        if (!r) {
          problems.push(`${s.path}: no record`);
          continue;
        }
        if (r.ended !== undefined) problems.push(`${s.path}: ended (${r.ended})`);
        for (const v of r.violations.slice(0, 3)) problems.push(`${s.path}: ${v}`);
        if (s.fromRV === undefined && !r.initialEnd) problems.push(`${s.path}: no initial-events-end bookmark`);
        // Per object, the same events in the same order (objects interleave by resourceVersion).
        const group = (evs: ReadonlyArray<readonly [string, string, string | undefined]>) => {
          const m = new Map<string, string[]>();
          for (const [type, key, rv] of evs) m.set(key, [...(m.get(key) ?? []), rv === undefined ? type : `${type}@${rv}`]);
          return m;
        };
        const got = group(r.events);
        const exp = group(want);
        if (r.events.length !== want.length) problems.push(`${s.path}: ${r.events.length} events, expected ${want.length}`);
        for (const key of new Set([...got.keys(), ...exp.keys()])) {
          const g = got.get(key) ?? [];
          const e = exp.get(key) ?? [];
          // The MODIFIED that starts a pod's deletion has no answer of its own: its type is compared.
          const same = g.length === e.length && g.every((x, i) => x === e[i] || (!(e[i] ?? '').includes('@') && x.startsWith(`${e[i] ?? ''}@`)));
          if (!same) problems.push(`${s.path}: ${key}: got [${g.join(' ')}], expected [${e.join(' ')}]`);
        }
      }
      const closed = (reason: string) => metric(m2, 'kube_cache_proxy_cache_watchers_closed_total', (l) => l['reason'] === reason) - metric(m0, 'kube_cache_proxy_cache_watchers_closed_total', (l) => l['reason'] === reason);
      t.diagnostic(`churn: ${writes.filter((w) => w.kind === 'pods').length} pod writes and ${bigWrites} ConfigMaps of ${BLOB_BYTES / 1024} KiB in ${(churnMs / 1000).toFixed(1)} s; ` +
        `every watcher had its events ${(deliveredMs / 1000).toFixed(1)} s after the churn started; ${expectedLines} events expected, ${counts.lines} lines received in all`);
      t.diagnostic(`watchers: ${[...byRole].map(([role, x]) => `${role} ${x.watchers} (${x.events} events)`).join(', ')}; ` +
        `the slow one closed after ${trippedAfter} big ConfigMaps; closed: slow=${closed('slow')} timeout=${closed('timeout')} client=${closed('client')} shutdown=${closed('shutdown')}`);
      assert.deepEqual(problems.slice(0, 30), [], `${problems.length} problems`);
      assert.equal(closed('slow'), 1, 'exactly one watcher closed as slow');
      assert.equal(closed('timeout') + closed('client') + closed('shutdown'), 0, 'no other watcher closed');
      assert.equal(watchers('pods', m2) - watchers('pods', m0), WATCHERS - 3, 'every pod watcher still open');
      assert.equal(watchers('configmaps', m2) - watchers('configmaps', m0), 2, 'the two ConfigMap readers still open');
      assert.deepEqual(counts.ended, [], 'no client saw its watch end');

      // The slow client reads again: what the kernel still held, then the end of the connection,
      // which the proxy cut when it closed the watcher (a stalled client would never read a clean
      // end of the stream; client-go re-watches from its last resourceVersion after either).
      const drained = await clients.ask<DrainReply>({ op: 'drainSlow', timeoutMs: 30_000 });
      t.diagnostic(`the slow watcher, reading again, got ${(drained.bytes / 2 ** 20).toFixed(1)} MiB then ${drained.how}`);
      assert.ok(drained.how === 'end' || drained.how === 'close', `the slow watcher's connection was not closed by the proxy (${drained.how})`);
      assert.ok(!drained.clean, 'the slow watcher got a clean end: its connection was kept until it read');
    } finally {
      await clients.close();
      await proxy.stop();
      for (const ns of [...namespaces, slowNs]) await call(cluster, direct, `/api/v1/namespaces/${ns}`, { method: 'DELETE' }).catch(() => undefined);
      await closeAgents();
    }
  });

  // A client may go away while its watch waits (for the probe, or for the cache to reach its
  // resourceVersion): the watcher that starts after that must not stay behind, collecting events.
  test('a client that leaves while its watch waits for the cache leaves no watcher behind', async () => {
    const cluster = sharedCluster();
    const direct = cluster.info.apiservers[0]?.url ?? '';
    const ns = `ws-gone-${randomBytes(3).toString('hex')}`;
    const created = await call(cluster, direct, '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ metadata: { name: ns } }) });
    assert.equal(created.status, 201, created.text());
    const proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}) });
    try {
      const p = proxy;
      const deadline = Date.now() + 60_000;
      while ((await fetch(`${p.metricsUrl}/readyz`)).status !== 200) {
        assert.ok(Date.now() < deadline, 'proxy not ready in 60 s');
        await sleep(100);
      }
      const served = async () => metric(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_served_total', (l) => l['verb'] === 'watch' && l['resource'] === 'configmaps');
      // Served from the cache once the reflector has its bookmark sample.
      for (;;) {
        assert.ok(Date.now() < deadline, 'watches of configmaps not served from the cache');
        const before = await served();
        const r = await call(cluster, p.url, `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=1`);
        assert.equal(r.status, 200);
        if ((await served()) > before) break;
        await sleep(200);
      }
      const watchers = async () => metric(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_watchers', (l) => l['resource'] === 'configmaps');
      const open0 = await watchers();
      const served0 = await served();
      const list = record((await call(cluster, direct, `/api/v1/namespaces/${ns}/configmaps`)).json());
      const rv = BigInt(String(record(list?.['metadata'])?.['resourceVersion']));
      // From a resourceVersion a few writes ahead: the proxy waits for its cache to get there.
      const u = new URL(p.url);
      const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca: readFileSync(cluster.info.caFile) });
      await new Promise<void>((resolve, reject) => {
        s.once('secureConnect', () => resolve());
        s.once('error', reject);
      });
      s.write(`GET /api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${rv + 3n} HTTP/1.1\r\nHost: ${u.host}\r\n` +
        `Authorization: Bearer ${cluster.info.users.admin.token ?? ''}\r\nAccept: application/json\r\n\r\n`);
      await sleep(500);
      s.destroy();
      for (let i = 0; i < 5; i++) {
        const r = await call(cluster, direct, `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body: JSON.stringify({ metadata: { name: `c${i}` } }) });
        assert.equal(r.status, 201, r.text());
      }
      const until = Date.now() + 10_000;
      while ((await served()) === served0 && Date.now() < until) await sleep(100);
      assert.equal(await served(), served0 + 1, 'the watch was not served from the cache after its client left');
      while ((await watchers()) !== open0 && Date.now() < until) await sleep(100);
      assert.equal(await watchers(), open0, 'a watcher whose client had gone is still open');
      const closed = metric(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_watchers_closed_total', (l) => l['resource'] === 'configmaps' && l['reason'] === 'client');
      assert.ok(closed >= 1, 'the watcher was not closed as its client\'s');
    } finally {
      await proxy.stop();
      await call(cluster, direct, `/api/v1/namespaces/${ns}`, { method: 'DELETE' }).catch(() => undefined);
      await closeAgents();
    }
  });
}
