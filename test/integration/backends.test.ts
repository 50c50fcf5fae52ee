// Three real apiservers behind the proxy: load spreads evenly (counted at the apiservers), a killed
// apiserver fails no read and makes the cache relist nothing, a restarted one gets its share back,
// a forwarded watch whose apiserver dies resumes with no missed and no duplicated event, apiservers
// discovered from the kubernetes EndpointSlice come and go under load without a failed request,
// and forwarded watches and upstream connections are recycled at their maximum age.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { TestCluster } from '../cluster/cluster.js';
import { proxyReady, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents } from '../helpers/http.js';
import { growthBy, scrape, total } from '../helpers/cache-workload.js';
import { until } from '../helpers/wait.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { DEFAULT_BACKEND_OPTIONS, type BackendOptions } from '../../proxy/options.js';
import { LineSplitter } from '../../cache/line-splitter.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const NS = 'backends-test';

let dir: string;
let cluster: TestCluster;
let agent: Agent;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kcp-backends-'));
  cluster = await TestCluster.up({ dir, apiservers: 3 });
  agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) } });
  const created = await call(cluster, apiserver(0), '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }) });
  assert.ok(created.status === 201 || created.status === 409, created.text());
  for (let i = 0; i < 20; i++) {
    const r = await call(cluster, apiserver(0), `/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}` }, data: { i: String(i) } }) });
    assert.equal(r.status, 201, r.text());
  }
});

after(async () => {
  await closeAgents();
  await agent?.close();
  await cluster?.down();
  rmSync(dir, { recursive: true, force: true });
});

function apiserver(i: number): string {
  const a = cluster.info.apiservers[i];
  if (!a) throw new Error(`no apiserver ${i}`);
  return a.url;
}

function hostOf(i: number): string {
  return new URL(apiserver(i)).host;
}

async function proxyWith(backends: Partial<BackendOptions>, upstreams = [0, 1, 2].map(apiserver)): Promise<TestProxy> {
  const p = await startTestProxy(cluster, {
    upstreams,
    cache: cacheConfigFrom({}),
    backends: { ...DEFAULT_BACKEND_OPTIONS, healthIntervalSeconds: 0.5, ...backends },
  });
  await proxyReady(p);
  return p;
}

/** Polls `check` every 100 ms until it holds (60 s by default). */
const waitFor = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> => {
  await until(what, check, timeoutMs);
};

/** The test's reads every apiserver has served, by apiserver index, from their own /metrics. */
async function servedByApiservers(): Promise<number[]> {
  return Promise.all([0, 1, 2].map(async (i) => {
    const r = await call(cluster, apiserver(i), '/metrics');
    if (r.status !== 200) return NaN;
    let n = 0;
    for (const line of r.text().split('\n')) {
      // The test's reads only: a restarted apiserver's own start-up requests (over loopback) are not load.
      if (!line.startsWith('apiserver_request_total{') || !/resource="(configmaps|namespaces)"/.test(line) || !/verb="(GET|LIST)"/.test(line)) continue;
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return n;
  }));
}

interface LoadResult {
  readonly statuses: Map<number, number>;
  readonly failures: string[];
}

/** `n` reads through the proxy at `concurrency`, cycling over `paths`; `onProgress` hears the count done. */
async function readLoad(proxyUrl: string, n: number, concurrency: number, paths: readonly string[], onProgress: (done: number) => void = () => {}): Promise<LoadResult> {
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let next = 0;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const path = paths[i % paths.length] ?? '/';
      try {
        const r = await call(cluster, proxyUrl, path);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status !== 200) failures.push(`${path}: ${r.status} ${r.text().slice(0, 200)}`);
      } catch (err) {
        failures.push(`${path}: ${String(err)}`);
      }
      onProgress(++done);
    }
  }));
  return { statuses, failures };
}

/** Forwarded (a GET without resourceVersion=0 is the apiserver's), cache-served and consistent reads. */
const READS = [
  `/api/v1/namespaces/${NS}`,
  `/api/v1/namespaces/${NS}/configmaps/cm-1`,
  `/api/v1/namespaces/${NS}/configmaps?resourceVersion=0`,
  `/api/v1/namespaces/${NS}/configmaps`,
];

function shares(counts: readonly number[]): number[] {
  const sum = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => c / sum);
}

function assertEven(counts: readonly number[], what: string): void {
  for (const [i, s] of shares(counts).entries()) {
    assert.ok(s >= (1 / 3) * 0.9 && s <= (1 / 3) * 1.1, `${what}: apiserver ${i} served ${(s * 100).toFixed(1)}% (${counts.join(', ')}), not within ±10% of a third`);
  }
}

function relists(samples: Awaited<ReturnType<typeof scrape>>): number {
  return total(samples, 'kube_cache_proxy_cache_relists_total', (l) => l['reason'] !== 'initial');
}

test('steady load: each apiserver serves a third of it (±10%), counted by the apiservers themselves', async () => {
  const p = await proxyWith({});
  try {
    const before = await servedByApiservers();
    const r = await readLoad(p.url, 900, 6, READS);
    assert.deepEqual(r.failures, []);
    const after = await servedByApiservers();
    assertEven(after.map((n, i) => n - (before[i] ?? 0)), 'steady load');
  } finally {
    await p.stop();
  }
});

test('one apiserver killed during 1,200 reads: none fails, the cache relists nothing; restarted, it gets its third back', async () => {
  const p = await proxyWith({});
  try {
    const metricsBefore = await scrape(p.metricsUrl);
    let killed: Promise<void> | undefined;
    const r = await readLoad(p.url, 1200, 6, READS, (done) => {
      if (done === 300) killed = cluster.stopApiserver(1, 'SIGKILL');
    });
    await killed;
    assert.deepEqual(r.failures, [], 'failed reads');
    assert.equal(r.statuses.get(200), 1200);
    const metricsAfter = await scrape(p.metricsUrl);
    assert.equal(relists(metricsAfter) - relists(metricsBefore), 0, 'the cache relisted');
    assert.equal(total(metricsAfter, 'kube_cache_proxy_backend_healthy', (l) => l['backend'] === hostOf(1)), 0, 'the killed apiserver is ejected');
    assert.ok(total(metricsAfter, 'kube_cache_proxy_backend_ejections_total', (l) => l['backend'] === hostOf(1)) >= 1);

    await cluster.startApiserver(1);
    await waitFor('re-admission', async () => total(await scrape(p.metricsUrl), 'kube_cache_proxy_backend_healthy', (l) => l['backend'] === hostOf(1)) === 1, 30_000);
    // One read at a time: least-outstanding sends more to whichever apiserver answers faster (the
    // restarted one is still warming up, and on a loaded machine any of them may lag for seconds),
    // so concurrent reads measure the apiservers' speeds. Sequential reads find every apiserver
    // with nothing outstanding, where the policy rotates: the re-admitted one must get a third.
    const before = await servedByApiservers();
    const again = await readLoad(p.url, 600, 1, READS);
    assert.deepEqual(again.failures, []);
    const after = await servedByApiservers();
    assertEven(after.map((n, i) => n - (before[i] ?? 0)), 'after the restart');
  } finally {
    await p.stop();
    await cluster.startApiserver(1);
  }
});

interface WatchEvent {
  readonly type: string;
  readonly name: string;
  readonly rv: string;
}

/** A watch of service accounts (not cached: forwarded) from `rv`, collecting its events until `stop`. */
async function collectWatch(base: string, rv: string, out: WatchEvent[], signal: AbortSignal): Promise<'ended' | 'broken'> {
  const res = await request(`${base}/api/v1/namespaces/${NS}/serviceaccounts?watch=1&resourceVersion=${rv}&allowWatchBookmarks=false`, {
    dispatcher: agent, headers: { authorization: `Bearer ${cluster.info.users.admin.token}` }, signal,
  });
  assert.equal(res.statusCode, 200);
  const lines = new LineSplitter();
  try {
    for await (const chunk of res.body) {
      for (const line of lines.push(chunk as Buffer)) {
        const e: unknown = JSON.parse(line.toString('utf8'));
        const ev = e as { type?: unknown; object?: { metadata?: { name?: unknown; resourceVersion?: unknown } } };
        assert.ok(ev.type !== 'ERROR', `ERROR event: ${line.toString('utf8')}`);
        out.push({ type: String(ev.type), name: String(ev.object?.metadata?.name), rv: String(ev.object?.metadata?.resourceVersion) });
      }
    }
    return 'ended';
  } catch (err) {
    if (signal.aborted) return 'ended';
    return 'broken';
  }
}

test('a forwarded watch whose apiserver is killed resumes from its last resourceVersion: no missed, no duplicated event', async () => {
  const p = await proxyWith({ forwardedWatchMaxAgeSeconds: 0 });
  try {
    const list = await call(cluster, apiserver(0), `/api/v1/namespaces/${NS}/serviceaccounts`);
    const startRV = String((list.json() as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    const longBefore = p.proxy.backends.backends.map((b) => b.outstanding.long);
    const stop = new AbortController();
    const viaProxy: WatchEvent[] = [];
    let resumes = 0;
    const proxyWatch = (async () => {
      let from = startRV;
      while (!stop.signal.aborted) {
        const got = await collectWatch(p.url, from, viaProxy, stop.signal).catch(() => 'broken' as const);
        if (stop.signal.aborted) return;
        assert.equal(got, 'broken', 'the watch ended although nothing ends it');
        resumes++;
        from = viaProxy.at(-1)?.rv ?? from;
      }
    })();
    // Which apiserver carries the forwarded watch: the one whose long-running count grew.
    let carrier = -1;
    await waitFor('the forwarded watch', () => {
      const now = p.proxy.backends.backends.map((b) => b.outstanding.long);
      const grown = now.map((n, i) => n - (longBefore[i] ?? 0));
      carrier = grown.findIndex((g) => g > 0);
      return carrier >= 0 && grown.filter((g) => g > 0).length === 1;
    }, 10_000);
    const index = [0, 1, 2].find((i) => new URL(apiserver(i)).origin === p.proxy.backends.backends[carrier]?.key) ?? -1;
    assert.ok(index >= 0);
    const directServer = apiserver(index === 0 ? 1 : 0);
    const direct: WatchEvent[] = [];
    const directWatch = collectWatch(directServer, startRV, direct, stop.signal);
    for (let i = 0; i < 60; i++) {
      if (i === 20) await cluster.stopApiserver(index, 'SIGKILL');
      const name = `sa-${i % 15}`;
      const r = i < 15
        ? await call(cluster, directServer, `/api/v1/namespaces/${NS}/serviceaccounts`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name } }) })
        : await call(cluster, directServer, `/api/v1/namespaces/${NS}/serviceaccounts/${name}`, { method: 'PATCH', body: JSON.stringify({ metadata: { labels: { round: String(i) } } }), headers: { 'content-type': 'application/merge-patch+json' } });
      assert.ok(r.status === 200 || r.status === 201, r.text());
      await sleep(50);
    }
    await waitFor('both watches to see every event', () => direct.length === 60 && viaProxy.length >= 60, 30_000);
    await sleep(500);
    stop.abort();
    await Promise.all([proxyWatch, directWatch]);
    assert.deepEqual(viaProxy, direct);
    assert.equal(resumes, 1, 'the client re-watched once, after the kill');
  } finally {
    await p.stop();
    for (const i of [0, 1, 2]) await cluster.startApiserver(i);
  }
});

test('apiservers discovered from the kubernetes EndpointSlice join and leave under load without a failed request', async () => {
  await cluster.writeKubernetesEndpoints({ ready: [0, 1] });
  const p = await proxyWith({ discovery: true }, [apiserver(0)]);
  const origins = () => p.proxy.backends.backends.map((b) => b.key).sort();
  try {
    await waitFor('two discovered apiservers', () => origins().length === 2);
    assert.deepEqual(origins(), [0, 1].map((i) => new URL(apiserver(i)).origin).sort());
    const before = await scrape(p.metricsUrl);
    let changes: Promise<void> | undefined;
    const r = await readLoad(p.url, 1500, 6, READS, (done) => {
      if (done === 300) {
        changes = (async () => {
          await cluster.writeKubernetesEndpoints({ ready: [0, 1, 2] });
          await waitFor('three apiservers', () => origins().length === 3);
          await sleep(1500);
          await cluster.writeKubernetesEndpoints({ ready: [0, 2] });
          await waitFor('apiserver 1 gone', () => origins().length === 2 && !origins().includes(new URL(apiserver(1)).origin));
        })();
      }
    });
    await changes;
    assert.deepEqual(r.failures, []);
    const after = await scrape(p.metricsUrl);
    const byBackend = growthBy(before, after, 'kube_cache_proxy_backend_requests_total', 'backend');
    assert.ok((byBackend[hostOf(2)] ?? 0) > 50, `the added apiserver got requests: ${JSON.stringify(byBackend)}`);
    assert.equal(after.filter((s) => s.labels['backend'] === hostOf(1)).length, 0, 'the removed apiserver\'s series are gone');
    assert.deepEqual(origins(), [0, 2].map((i) => new URL(apiserver(i)).origin).sort());
  } finally {
    await p.stop();
  }
});

test('a forwarded watch is ended cleanly at its maximum age; upstream connections are recycled at theirs', async () => {
  const p = await proxyWith({ forwardedWatchMaxAgeSeconds: 1, connectionMaxAgeSeconds: 1, maxAgeJitter: 0.5 });
  try {
    const list = await call(cluster, p.url, `/api/v1/namespaces/${NS}/serviceaccounts`);
    const rv = String((list.json() as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    const started = Date.now();
    const got = await collectWatch(p.url, rv, [], new AbortController().signal);
    const took = Date.now() - started;
    assert.equal(got, 'ended', 'ended cleanly, not broken');
    assert.ok(took >= 900 && took < 5_000, `ended after ${took} ms`);
    const r = await readLoad(p.url, 200, 2, READS.slice(0, 2), () => {});
    assert.deepEqual(r.failures, []);
    await sleep(2_000);
    await readLoad(p.url, 50, 2, READS.slice(0, 2));
    const m = await scrape(p.metricsUrl);
    assert.equal(total(m, 'kube_cache_proxy_reshuffles_total', (l) => l['reason'] === 'forwarded_watch_max_age'), 1);
    assert.ok(total(m, 'kube_cache_proxy_reshuffles_total', (l) => l['reason'] === 'upstream_connection_max_age') >= 1, 'upstream connections recycled');
  } finally {
    await p.stop();
  }
});
