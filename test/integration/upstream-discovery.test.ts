// Upstream discovery against a real control plane: three apiservers, each on its own loopback
// address and all on one port, and the `kubernetes` EndpointSlice written as the apiserver's endpoint
// reconciler writes it. Through the proxy's own backend set (buildUpstreams + cacheUpstream, with
// the admin kubeconfig), the discovery must follow the slice live (ready endpoints only), keep its
// last set when the slice empties, survive losing the apiserver its watch was on, and the URLs it
// finds must work: each apiserver answers on it with a certificate the cluster CA verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { TestCluster } from '../cluster/cluster.js';
import type { CacheUpstream, UpstreamGetOptions, UpstreamReply } from '../../cache/upstream.js';
import { startUpstreamDiscovery } from '../../proxy/upstream-discovery.js';
import { buildUpstreams, loadKubeConfig, type Upstreams } from '../../proxy/kubeconfig-source.js';
import { cacheUpstream } from '../../proxy/cache-upstream.js';
import { createBackendMetrics } from '../../proxy/backend-metrics.js';
import { DEFAULT_BACKEND_OPTIONS } from '../../proxy/options.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The proxy's own upstream to the apiservers (its backend set, balancer and credentials: those of
 * the admin kubeconfig), recording which apiserver serves the watch and how many LISTs were sent.
 */
function observed(inner: CacheUpstream): CacheUpstream & { watchBackend: string; requests: number; lists: number } {
  const u = {
    watchBackend: '',
    requests: 0,
    lists: 0,
    async get(path: string, signal: AbortSignal, options?: UpstreamGetOptions): Promise<UpstreamReply> {
      u.requests++;
      if (!options?.longRunning) u.lists++;
      const reply = await inner.get(path, signal, options);
      if (options?.longRunning) u.watchBackend = reply.backend;
      return reply;
    },
    healthyBackends: () => inner.healthyBackends(),
  };
  return u;
}

/** onChange's calls, in order, and a way to wait for the next one. */
class Changes {
  readonly calls: string[][] = [];
  #waiter: (() => void) | undefined;

  record(urls: readonly URL[]): void {
    this.calls.push(urls.map((u) => u.origin));
    this.#waiter?.();
  }

  async next(index: number, timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.calls.length <= index) {
      if (Date.now() > deadline) throw new Error(`onChange call ${index} did not come in ${timeoutMs} ms; calls so far: ${JSON.stringify(this.calls)}`);
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        setTimeout(resolve, 200);
      });
    }
    return this.calls[index] ?? [];
  }
}

test('upstream discovery follows the kubernetes EndpointSlice of three apiservers on their own addresses', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-discovery-'));
  const cluster = await TestCluster.up({ dir, apiservers: 3 });
  const agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) } });
  const logLines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _enc, cb) { logLines.push(chunk.toString()); cb(); } }));
  let ok = false;
  let discovery: { stop(): Promise<void> } | undefined;
  let upstreams: Upstreams | undefined;
  try {
    const apiservers = cluster.info.apiservers;
    const origins = apiservers.map((a) => new URL(a.url).origin);
    const port = apiservers[0]?.port;

    await t.test('the cluster: one address each, one port, the kubernetes Service targets it', async () => {
      assert.deepEqual(apiservers.map((a) => a.host), ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
      assert.ok(apiservers.every((a) => a.port === port && a.url === `https://${a.host}:${port}`));
      const svc = await cluster.kubectl('admin', ['-n', 'default', 'get', 'service', 'kubernetes', '-o', 'jsonpath={.spec.ports[0].name} {.spec.ports[0].targetPort}']);
      assert.equal(svc.code, 0, svc.stderr);
      assert.equal(svc.stdout, `https ${port}`);
    });

    const token = cluster.info.users.admin.token ?? '';
    const kc = loadKubeConfig({ kubeconfig: cluster.info.users.admin.kubeconfig });
    const ups = await buildUpstreams(kc, origins, {
      backends: DEFAULT_BACKEND_OPTIONS, log,
      metrics: createBackendMetrics(new Registry(), () => ups.set.healthy()),
      onRefreshError: (err) => log.error({ err }, 'credentials refresh'),
    });
    upstreams = ups;
    const upstream = observed(cacheUpstream(ups.set));
    const changes = new Changes();
    discovery = startUpstreamDiscovery({ upstream, log, onChange: (urls) => changes.record(urls) });
    const [u0, u1, u2] = origins as [string, string, string];

    await t.test('two ready apiservers, then three, then one not ready', async () => {
      await cluster.writeKubernetesEndpoints({ ready: [0, 1] });
      assert.deepEqual(await changes.next(0), [u0, u1]);
      await cluster.writeKubernetesEndpoints({ ready: [0, 1, 2] });
      assert.deepEqual(await changes.next(1), [u0, u1, u2]);
      await cluster.writeKubernetesEndpoints({ ready: [0, 2], notReady: [1] });
      assert.deepEqual(await changes.next(2), [u0, u2]);
    });

    await t.test('an empty slice is not applied: the next call is the next non-empty set', async () => {
      const rv = await cluster.writeKubernetesEndpoints({ ready: [] });
      const slice = await cluster.kubectl('admin', ['-n', 'default', 'get', 'endpointslice', 'kubernetes', '-o', 'jsonpath={.metadata.resourceVersion} {.endpoints}']);
      assert.equal(slice.stdout, `${rv} null`, 'the slice is empty in the API (no endpoints, as the reconciler leaves it)');
      // The warning proves the empty slice reached the discovery (before the next write does).
      const deadline = Date.now() + 20_000;
      while (!logLines.some((l) => l.includes('list no ready apiserver')) && Date.now() < deadline) await sleep(50);
      assert.ok(logLines.some((l) => l.includes('list no ready apiserver')), 'warned about the empty slice');
      assert.equal(changes.calls.length, 3, `no call for the empty slice: ${JSON.stringify(changes.calls)}`);
      await cluster.writeKubernetesEndpoints({ ready: [1] });
      assert.deepEqual(await changes.next(3), [u1]);
    });

    await t.test('losing the apiserver the watch is on: it watches on from another one', async () => {
      await cluster.writeKubernetesEndpoints({ ready: [0, 1, 2] });
      assert.deepEqual(await changes.next(4), [u0, u1, u2]);
      const lost = origins.indexOf(upstream.watchBackend);
      assert.ok(lost >= 0, `the watch is on one of the apiservers (${upstream.watchBackend})`);
      await cluster.stopApiserver(lost, 'SIGKILL');
      const others = [0, 1, 2].filter((i) => i !== lost);
      await cluster.writeKubernetesEndpoints({ ready: others });
      assert.deepEqual(await changes.next(5), others.map((i) => origins[i]));
      assert.notEqual(upstream.watchBackend, origins[lost]);
      assert.equal(upstream.lists, 1, 'the watch went on from its last resourceVersion: no relist');
      await cluster.startApiserver(lost);
      assert.equal(cluster.info.apiservers[lost]?.url, origins[lost], 'a restarted apiserver keeps its address and port');
    });

    await t.test('every apiserver down while the slice changes and etcd compacts: a 410 on the way back, then a relist', async () => {
      for (const i of [0, 1, 2]) await cluster.stopApiserver(i, 'SIGKILL');
      // The reconciler's write while no apiserver is up (it goes to etcd), then compaction: the
      // resourceVersion the discovery holds is now too old for any apiserver that starts.
      await cluster.writeKubernetesEndpoints({ ready: [0, 1, 2] });
      await cluster.compactEtcd();
      await cluster.startApiserver(2);
      assert.deepEqual(await changes.next(6, 60_000), [u0, u1, u2]);
      assert.equal(upstream.lists, 2, 'one relist');
      assert.ok(logLines.some((l) => l.includes('watch expired')), 'the relist followed a 410');
      assert.equal(changes.calls.length, 7, 'nothing applied while every apiserver was down');
      await cluster.startApiserver(0);
      await cluster.startApiserver(1);
    });

    await t.test('every URL found is an apiserver with a certificate for its address', async () => {
      const found = [...new Set(changes.calls.flat())].sort();
      assert.deepEqual(found, [...origins].sort());
      for (const url of found) {
        const res = await request(`${url}/readyz`, { dispatcher: agent, headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.statusCode, 200, url);
        assert.equal(await res.body.text(), 'ok');
      }
    });

    const before = upstream.requests;
    await discovery.stop();
    discovery = undefined;
    await sleep(500);
    assert.equal(upstream.requests, before, 'no request after stop');
    ok = true;
  } finally {
    await discovery?.stop();
    await upstreams?.stop();
    await agent.close();
    await cluster.down();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`discovery log:\n${logLines.join('')}cluster logs kept in ${dir}/logs\n`);
  }
});
