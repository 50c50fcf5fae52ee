// Client watches served from the cache survive the control plane: 200 watches of pods and
// ConfigMaps (namespaces, spec.nodeName, label selectors, unfiltered), each started from a LIST's
// resourceVersion through the proxy, stay open while writers keep writing straight at the apiservers
// and (a) every apiserver is restarted in turn, (b) all are down for 5 s, (c) etcd is compacted and
// every apiserver restarted, so the proxy must relist (410 Expired) and turn the difference into
// events. No watch may end or carry an ERROR event, resourceVersions must only grow (a bookmark a
// minute after the start included), and afterwards every client's view (its LIST with its events
// applied) must equal a LIST straight from an apiserver: the same objects at the same
// resourceVersions. So must the views of clients that resume from the resourceVersion of an event
// they got (from inside runs of deletions, which relists send, and at random: replays longer than
// the watcher queue), and of clients that LIST straight from an apiserver while the proxy has not
// caught up and then watch through it (a 410 is fine for those: they LIST again).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { TestCluster } from '../cluster/cluster.js';
import { startTestProxy, type TestProxy } from '../helpers/env.js';
import { terminateApiserver } from '../helpers/terminate-apiserver.js';
import { call, closeAgents } from '../helpers/http.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { LineSplitter } from '../../cache/line-splitter.js';
import { growthBy, scrape, total, type Sample } from '../helpers/cache-workload.js';

const WATCHES = 200;
const WRITERS = 3;
const SLOTS = 8;
const COLORS = ['red', 'green', 'blue'] as const;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
const enc = encodeURIComponent;

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function metaOf(o: unknown): { key: string; rv: string } {
  const m = record(record(o)?.['metadata']);
  const ns = typeof m?.['namespace'] === 'string' ? m['namespace'] : '';
  const rv = m?.['resourceVersion'];
  if (typeof rv !== 'string' || !/^[0-9]+$/.test(rv)) throw new Error(`no resourceVersion in ${JSON.stringify(o).slice(0, 200)}`);
  return { key: `${ns}/${String(m?.['name'])}`, rv };
}

/** One client watch: its LIST, then the events applied, and everything that would break a client. */
class ClientWatch {
  readonly path: string;
  /**
   * A client whose LIST came straight from an apiserver (as when the proxy forwarded it): a 410
   * Expired is a legitimate answer for it, and it LISTs again (through the proxy) and re-watches,
   * as client-go does. For the others an ERROR event is a failure.
   */
  readonly relistOnExpired: boolean;
  readonly view = new Map<string, string>();
  /** The LIST's items (before any event), and every event since: to resume from any of them. */
  readonly listed = new Map<string, string>();
  readonly log: Array<{ readonly type: string; readonly key: string; readonly rv: string }> = [];
  listRV = '';
  last = 0n;
  events = 0;
  bookmarks = 0;
  expired = 0;
  ended: string | undefined;
  readonly violations: string[] = [];
  reopening: Promise<void> | undefined;
  #abort = new AbortController();
  #stream = 0;
  #ctx: { cluster: TestCluster; proxyUrl: string; agent: Agent } | undefined;

  constructor(path: string, relistOnExpired = false) {
    this.path = path;
    this.relistOnExpired = relistOnExpired;
  }

  /** LIST from `base` (the proxy or an apiserver); returns the list's resourceVersion. */
  async list(cluster: TestCluster, base: string): Promise<string> {
    const list = await call(cluster, base, this.path);
    if (list.status !== 200) throw new Error(`LIST ${this.path}: ${list.status} ${list.text().slice(0, 200)}`);
    const body = record(list.json());
    this.view.clear();
    for (const item of Array.isArray(body?.['items']) ? (body['items'] as unknown[]) : []) {
      const m = metaOf(item);
      this.view.set(m.key, m.rv);
    }
    this.listed.clear();
    for (const [k, v] of this.view) this.listed.set(k, v);
    this.log.length = 0;
    return metaOf(body).rv;
  }

  /** LIST and watch through the proxy; false when the watch was forwarded (not served from the cache). */
  async open(cluster: TestCluster, proxyUrl: string, agent: Agent): Promise<boolean> {
    return this.watch(cluster, proxyUrl, agent, await this.list(cluster, proxyUrl));
  }

  /**
   * A client of `other` that lost its connection right after the event at `index` and resumes from
   * its resourceVersion, as client-go does, with what it had seen so far as its view.
   */
  static resumedFrom(other: ClientWatch, index: number): { client: ClientWatch; rv: string } {
    const c = new ClientWatch(other.path);
    for (const [k, v] of other.listed) c.view.set(k, v);
    let rv = other.listRV;
    for (const e of other.log.slice(0, index + 1)) {
      if (e.type === 'DELETED') c.view.delete(e.key);
      else c.view.set(e.key, e.rv);
      rv = e.rv;
    }
    return { client: c, rv };
  }

  /** Watches from `rv` through the proxy; false when the watch was forwarded (not served from the cache). */
  async watch(cluster: TestCluster, proxyUrl: string, agent: Agent, rv: string): Promise<boolean> {
    this.#ctx = { cluster, proxyUrl, agent };
    this.listRV = rv;
    this.last = BigInt(rv);
    const sep = this.path.includes('?') ? '&' : '?';
    this.#abort = new AbortController();
    const res = await request(`${proxyUrl}${this.path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${rv}`, {
      dispatcher: agent, signal: this.#abort.signal,
      headers: { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}`, accept: 'application/json' },
    });
    if (res.statusCode !== 200) throw new Error(`WATCH ${this.path}: ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`);
    // The apiserver's answers carry an Audit-Id; the cache's do not. A forwarded watch would end
    // with its apiserver: not what this test is about.
    if (res.headers['audit-id'] !== undefined) {
      this.#abort.abort();
      await res.body.text().catch(() => undefined);
      return false;
    }
    const stream = ++this.#stream;
    const lines = new LineSplitter();
    res.body.on('data', (chunk: Buffer) => {
      for (const line of lines.push(chunk)) if (stream === this.#stream) this.#onLine(line);
    });
    res.body.on('end', () => { if (stream === this.#stream) this.ended ??= 'end of stream'; });
    res.body.on('error', (err: Error) => { if (stream === this.#stream) this.ended ??= `error: ${err.message}`; });
    return true;
  }

  #onLine(line: Buffer): void {
    let ev: Record<string, unknown> | undefined;
    try {
      ev = record(JSON.parse(line.toString('utf8')));
    } catch {
      this.violations.push(`unparsable line ${line.toString('utf8', 0, 200)}`);
      return;
    }
    const type = String(ev?.['type']);
    if (type === 'ERROR') {
      const ctx = this.#ctx;
      if (this.relistOnExpired && record(ev?.['object'])?.['code'] === 410 && ctx && !this.reopening) {
        // What client-go does: LIST again, watch from there.
        this.expired++;
        this.#stream++;
        this.#abort.abort();
        this.reopening = (async () => {
          try {
            for (let attempt = 0; !(await this.open(ctx.cluster, ctx.proxyUrl, ctx.agent)); attempt++) {
              if (attempt >= 30) throw new Error('every watch was forwarded');
              await sleep(300);
            }
          } catch (err) {
            this.violations.push(`relist after 410 failed: ${String(err)}`);
          } finally {
            this.reopening = undefined;
          }
        })();
        return;
      }
      this.violations.push(`ERROR event: ${JSON.stringify(ev?.['object']).slice(0, 300)}`);
      return;
    }
    const m = metaOf(ev?.['object']);
    const rv = BigInt(m.rv);
    if (type === 'BOOKMARK') {
      this.bookmarks++;
      if (rv < this.last) this.violations.push(`BOOKMARK at ${rv} after ${this.last}`);
      else this.last = rv;
      return;
    }
    this.events++;
    // A client resumes from the last resourceVersion it saw: two events at one resourceVersion
    // (or going back) would make it skip the second after a reconnect.
    if (rv <= this.last) this.violations.push(`${type} ${m.key} at ${rv} after ${this.last}`);
    else this.last = rv;
    this.log.push({ type, key: m.key, rv: m.rv });
    if (type === 'ADDED' || type === 'MODIFIED') this.view.set(m.key, m.rv);
    else if (type === 'DELETED') {
      if (!this.view.delete(m.key)) this.violations.push(`DELETED ${m.key} at ${rv}: not in the client's view`);
    } else this.violations.push(`event type ${type}`);
  }

  close(): void {
    this.#stream++;
    this.#abort.abort();
  }
}

interface Slot {
  readonly kind: 'pods' | 'configmaps';
  readonly namespace: string;
  readonly index: number;
  gen: number;
  exists: boolean;
}

/** Writes (create, relabel, delete) its own pods and ConfigMaps at whichever apiserver is up. */
async function runWriter(cluster: TestCluster, id: string, namespaces: readonly string[], nodes: readonly string[], target: () => string | undefined, done: () => boolean): Promise<{ writes: number; failed: number }> {
  const slots: Slot[] = [];
  for (const kind of ['pods', 'configmaps'] as const) {
    for (let i = 0; i < SLOTS; i++) slots.push({ kind, namespace: namespaces[i % namespaces.length] ?? '', index: i, gen: 0, exists: false });
  }
  let writes = 0;
  let failed = 0;
  while (!done()) {
    const server = target();
    if (server === undefined) {
      await sleep(50);
      continue;
    }
    const slot = pick(slots);
    const name = `${id}-${slot.kind === 'pods' ? 'p' : 'c'}${slot.index}g${slot.gen}`;
    const base = `/api/v1/namespaces/${slot.namespace}/${slot.kind}`;
    const color = pick(COLORS);
    let method: 'POST' | 'PATCH' | 'DELETE';
    let path = `${base}/${name}`;
    let body: string | undefined;
    let headers: Record<string, string> | undefined;
    if (!slot.exists) {
      method = 'POST';
      path = base;
      const metadata = { name, labels: { writer: id, color } };
      body = JSON.stringify(slot.kind === 'configmaps'
        ? { metadata, data: { v: String(writes) } }
        : { metadata, spec: { nodeName: pick(nodes), containers: [{ name: 'c', image: 'registry.example/demo:1' }] } });
    } else if (Math.random() < 0.6) {
      method = 'PATCH';
      body = JSON.stringify({ metadata: { labels: { color, n: String(writes) } } });
      headers = { 'content-type': 'application/merge-patch+json' };
    } else {
      method = 'DELETE';
      if (slot.kind === 'pods') path += '?gracePeriodSeconds=0';
    }
    let status = 0;
    try {
      status = (await call(cluster, server, path, { method, ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) })).status;
    } catch {
      status = 0;
    }
    if (status !== (method === 'POST' ? 201 : 200)) {
      // Unknown outcome (the apiserver went away): the next object of this slot gets a new name.
      failed++;
      slot.gen++;
      slot.exists = false;
      await sleep(100);
      continue;
    }
    writes++;
    slot.exists = method !== 'DELETE';
    await sleep(30);
  }
  return { writes, failed };
}

test('200 client watches from the cache survive restarts, an outage and a compaction, and end up exact', { timeout: 600_000 }, async (t) => {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'kcp-watch-survival-'));
  const cluster = await TestCluster.up({ dir, apiservers: 3 });
  const urls = cluster.info.apiservers.map((a) => a.url);
  const up = new Set(urls);
  let ok = false;
  let proxy: TestProxy | undefined;
  const agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) }, bodyTimeout: 0, headersTimeout: 60_000 });
  const watches: ClientWatch[] = [];
  try {
    const clusterMs = Date.now() - started;
    const run = randomBytes(3).toString('hex');
    const namespaces = ['a', 'b', 'c'].map((x) => `survive-${run}-${x}`);
    const nodes = [0, 1, 2, 3].map((i) => `survive-${run}-node-${i}`);
    const direct = urls[0] ?? '';
    for (const ns of namespaces) {
      const r = await call(cluster, direct, '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ metadata: { name: ns } }) });
      assert.equal(r.status, 201, r.text());
    }
    // Watcher queues of 1,000 lines (a tenth of the default): a resumed client's replay of the
    // history, or a relist's diff, is then larger than the queue, as replaying a full history of
    // 10,000 events of 4 KiB pods is larger than the default 32 MiB. Neither may close a watch.
    const base = cacheConfigFrom({ pageSize: 25 });
    assert.ok(base);
    proxy = await startTestProxy(cluster, { cache: { ...base, watch: { ...base.watch, watcherMaxQueuedLines: 1_000 } }, upstreams: urls });
    const p = proxy;
    const ready = Date.now() + 60_000;
    while ((await fetch(`${p.metricsUrl}/readyz`)).status !== 200) {
      assert.ok(Date.now() < ready, 'proxy not ready in 60 s');
      await sleep(100);
    }

    let stopping = false;
    const writers = Array.from({ length: WRITERS }, (_, i) => runWriter(cluster, `${run}-w${i}`, namespaces, nodes, () => (up.size === 0 ? undefined : pick([...up])), () => stopping));
    let writersDone: Array<{ writes: number; failed: number }> = [];
    let openStarted = Date.now();
    try {
      // The watches: 20 selectors, 10 clients each, opened while the writers write.
      const paths = [
        '/api/v1/pods',
        '/api/v1/pods?labelSelector=color%3Dred',
        ...namespaces.map((ns) => `/api/v1/namespaces/${ns}/pods`),
        `/api/v1/namespaces/${namespaces[0] ?? ''}/pods?labelSelector=color%3Dblue`,
        ...nodes.map((n) => `/api/v1/pods?fieldSelector=${enc(`spec.nodeName=${n}`)}`),
        `/api/v1/pods?fieldSelector=${enc(`spec.nodeName=${nodes[1] ?? ''}`)}&labelSelector=${enc('color in (green,red)')}`,
        '/api/v1/configmaps',
        '/api/v1/configmaps?labelSelector=color%3Dgreen',
        ...namespaces.map((ns) => `/api/v1/namespaces/${ns}/configmaps`),
        `/api/v1/namespaces/${namespaces[1] ?? ''}/configmaps?labelSelector=${enc('color!=red')}`,
        `/api/v1/namespaces/${namespaces[2] ?? ''}/configmaps?labelSelector=color%3Dred`,
        `/api/v1/pods?labelSelector=${enc('color notin (red),writer')}`,
        `/api/v1/configmaps?labelSelector=${enc(`writer=${run}-w0`)}`,
      ];
      assert.equal(paths.length, 20);
      const m0 = await scrape(p.metricsUrl);
      let forwarded = 0;
      openStarted = Date.now();
      for (let i = 0; i < WATCHES; i++) watches.push(new ClientWatch(paths[i % paths.length] ?? ''));
      await Promise.all(Array.from({ length: 10 }, async (_, k) => {
        for (let i = k; i < watches.length; i += 10) {
          const w = watches[i] as ClientWatch;
          for (let attempt = 0; !(await w.open(cluster, p.url, agent)); attempt++) {
            forwarded++;
            assert.ok(attempt < 30, `${w.path}: every watch was forwarded`);
            await sleep(300);
          }
        }
      }));
      const openMs = Date.now() - openStarted;
      const m1 = await scrape(p.metricsUrl);
      const watchers = (m: readonly Sample[]) => total(m, 'kube_cache_proxy_cache_watchers', (l) => l['resource'] === 'pods' || l['resource'] === 'configmaps');
      assert.equal(watchers(m1) - watchers(m0), WATCHES);
      t.diagnostic(`cluster up in ${(clusterMs / 1000).toFixed(1)} s; ${WATCHES} watches opened in ${(openMs / 1000).toFixed(1)} s (${forwarded} forwarded at first and retried)`);

      const phases: string[] = [];
      const events = () => watches.reduce((n, w) => n + w.events, 0);
      const phase = async (name: string, f: () => Promise<void>) => {
        const t0 = Date.now();
        const e0 = events();
        const before = await scrape(p.metricsUrl);
        await f();
        const after = await scrape(p.metricsUrl);
        const ended = watches.filter((w) => w.ended !== undefined).length;
        phases.push(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${events() - e0} events to clients, relists ${JSON.stringify(growthBy(before, after, 'kube_cache_proxy_cache_relists_total', 'reason'))}, ` +
          `upstream watch restarts ${JSON.stringify(growthBy(before, after, 'kube_cache_proxy_cache_watch_restarts_total', 'reason'))}, client watches ended: ${ended}`);
        return after;
      };
      const stop = async (i: number) => {
        up.delete(urls[i] ?? '');
        await terminateApiserver(cluster, i);
      };
      const start = async (i: number) => {
        await cluster.startApiserver(i);
        up.add(urls[i] ?? '');
      };
      /** The cache answers a consistent LIST of pods and of ConfigMaps again. */
      const recovered = async (what: string) => {
        const deadline = Date.now() + 40_000;
        for (const resource of ['pods', 'configmaps']) {
          for (;;) {
            assert.ok(Date.now() < deadline, `${what}: ${resource} not served from the cache within 40 s`);
            const served = async () => total(await scrape(p.metricsUrl), 'kube_cache_proxy_cache_served_total', (l) => l['resource'] === resource && l['verb'] === 'list');
            const before = await served();
            const r = await call(cluster, p.url, `/api/v1/${resource}?limit=1`);
            if (r.status === 200 && (await served()) > before) break;
            await sleep(200);
          }
        }
      };
      await phase('warm-up', () => sleep(3_000));
      await phase('(a) restart apiserver 0, 1, 2 in turn', async () => {
        for (const i of [0, 1, 2]) {
          await stop(i);
          await start(i);
          await sleep(1_500);
        }
      });
      // Clients that start while the proxy has not caught up yet: their LIST comes straight from an
      // apiserver (as when the proxy forwards it), their watch from that resourceVersion through
      // the proxy (retried while the proxy forwards it): served from the cache once it has caught
      // up, exactly, or answered 410 (then they LIST again).
      const late: ClientWatch[] = [];
      const startLate = (n: number) => Promise.all(Array.from({ length: n }, async () => {
        const c = new ClientWatch(pick(paths), true);
        const server = pick([...up]);
        const rv = await c.list(cluster, server);
        for (let attempt = 0; !(await c.watch(cluster, p.url, agent, rv)); attempt++) {
          assert.ok(attempt < 60, `${c.path}: a late watch from ${rv} was never served from the cache`);
          await sleep(300);
        }
        late.push(c);
      }));
      await phase('(b) all apiservers down for 5 s', async () => {
        await Promise.all([0, 1, 2].map(stop));
        await sleep(5_000);
        await Promise.all([0, 1, 2].map(start));
        await Promise.all([startLate(10), recovered('(b)')]);
        await sleep(2_000);
      });
      let compactedAt = 0n;
      const beforeC = await scrape(p.metricsUrl);
      const afterC = await phase('(c) compact etcd, restart every apiserver', async () => {
        compactedAt = await cluster.compactEtcd();
        await Promise.all([0, 1, 2].map(stop));
        await Promise.all([0, 1, 2].map(start));
        await Promise.all([startLate(10), recovered('(c)')]);
        await sleep(2_000);
      });
      // Clients that lose their connection resume from the last resourceVersion they saw: from
      // inside each run of deletions (a relist's diff sends those), and from random events.
      const resumes: Array<{ client: ClientWatch; rv: string }> = [];
      for (const w of watches) {
        const runs = w.log.map((e, i) => i).filter((i) => w.log[i]?.type === 'DELETED' && w.log[i + 1]?.type === 'DELETED');
        for (const i of runs.slice(0, 2)) resumes.push(ClientWatch.resumedFrom(w, i));
      }
      const burstResumes = resumes.length;
      while (resumes.length < burstResumes + 40) {
        const w = pick(watches);
        if (w.log.length > 0) resumes.push(ClientWatch.resumedFrom(w, Math.floor(Math.random() * w.log.length)));
      }
      const resumeStarted = Date.now();
      await Promise.all(Array.from({ length: 10 }, async (_, k) => {
        for (let i = k; i < resumes.length; i += 10) {
          const r = resumes[i] as { client: ClientWatch; rv: string };
          for (let attempt = 0; !(await r.client.watch(cluster, p.url, agent, r.rv)); attempt++) {
            assert.ok(attempt < 30, `${r.client.path}: every resumed watch was forwarded`);
            await sleep(300);
          }
          watches.push(r.client);
        }
      }));
      t.diagnostic(`${resumes.length} clients resumed (${burstResumes} from inside runs of deletions) in ${((Date.now() - resumeStarted) / 1000).toFixed(1)} s`);
      // Bookmarks come about a minute after a watch starts: the first watches get theirs after the
      // relists, at the cache's resourceVersion now (checked: never behind an event they had).
      const firstWatches = watches.slice(0, WATCHES);
      while (firstWatches.some((w) => w.bookmarks === 0) && Date.now() - openStarted < 90_000) await sleep(500);
      stopping = true;
      writersDone = await Promise.all(writers);
      await Promise.all(late.map((c) => c.reopening));
      watches.push(...late);

      // Afterwards: every client's view equals a LIST straight from an apiserver (given time to
      // deliver the last writes).
      const settle = Date.now();
      let mismatches: string[] = [];
      for (;;) {
        mismatches = [];
        const truth = new Map<string, Map<string, string>>();
        for (const path of paths) {
          const r = await call(cluster, direct, path);
          assert.equal(r.status, 200, r.text());
          const m = new Map<string, string>();
          const items = record(r.json())?.['items'];
          for (const item of Array.isArray(items) ? (items as unknown[]) : []) {
            const x = metaOf(item);
            m.set(x.key, x.rv);
          }
          truth.set(path, m);
        }
        for (const w of watches) {
          const want = truth.get(w.path) ?? new Map<string, string>();
          const diff: string[] = [];
          for (const [k, rv] of want) if (w.view.get(k) !== rv) diff.push(`${k}: ${w.view.get(k) ?? 'missing'} (apiserver: ${rv})`);
          for (const [k, rv] of w.view) if (!want.has(k)) diff.push(`${k}: ${rv} (apiserver: gone)`);
          if (diff.length > 0) mismatches.push(`${w.path} (from ${w.listRV}): ${diff.slice(0, 4).join('; ')}${diff.length > 4 ? ` and ${diff.length - 4} more` : ''}`);
        }
        if (mismatches.length === 0 || Date.now() - settle > 30_000) break;
        await sleep(500);
      }
      const m2 = await scrape(p.metricsUrl);
      const closed = growthBy(m1, m2, 'kube_cache_proxy_cache_watchers_closed_total', 'reason');
      const expiredInC = total(afterC, 'kube_cache_proxy_cache_relists_total', (l) => l['reason'] === 'expired') - total(beforeC, 'kube_cache_proxy_cache_relists_total', (l) => l['reason'] === 'expired');
      const relists = (resource: string) => total(m2, 'kube_cache_proxy_cache_relists_total', (l) => l['reason'] === 'expired' && l['resource'] === resource);
      for (const line of phases) t.diagnostic(line);
      const writes = writersDone.reduce((n, w) => n + w.writes, 0);
      const failed = writersDone.reduce((n, w) => n + w.failed, 0);
      t.diagnostic(`${late.length} late clients (LIST from an apiserver during recovery, then WATCH through the proxy): ${late.filter((c) => c.expired > 0).length} answered 410 and listed again`);
      t.diagnostic(`compacted etcd at ${compactedAt}; ${writes} writes (${failed} failed: apiserver going down); ${events()} events and ${watches.reduce((n, w) => n + w.bookmarks, 0)} bookmarks to clients; ` +
        `relists on 410 over the run: pods=${relists('pods')} configmaps=${relists('configmaps')}; clients equal to the apiserver ${((Date.now() - settle) / 1000).toFixed(1)} s after the writes stopped; total ${((Date.now() - started) / 1000).toFixed(0)} s`);
      const ended = watches.filter((w) => w.ended !== undefined).map((w) => `${w.path}: ${w.ended ?? ''}`);
      const violations = watches.flatMap((w) => w.violations.slice(0, 2).map((v) => `${w.path}: ${v}`));
      assert.deepEqual(ended, [], 'client watches ended');
      assert.deepEqual(violations.slice(0, 20), [], `${violations.length} protocol violations`);
      assert.deepEqual(closed, {}, 'watchers closed by the proxy');
      assert.equal(watchers(m2) - watchers(m0), watches.length, 'every watcher still open');
      assert.deepEqual(mismatches.slice(0, 20), [], `${mismatches.length} client views differ from the apiserver`);
      assert.ok(expiredInC > 0, 'no relist on 410 Expired after the compaction');
      assert.ok(firstWatches.every((w) => w.bookmarks > 0), 'a watch got no bookmark within 90 s');
      assert.ok(writes > 300, 'the writers kept writing');
      ok = true;
    } finally {
      stopping = true;
      await Promise.all(writers);
    }
  } finally {
    for (const w of watches) w.close();
    await proxy?.stop();
    await agent.close();
    await closeAgents();
    await cluster.down();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`cluster logs kept in ${dir}/logs`);
  }
});
