// Read-your-writes through the cache. Eight writers create, update and delete their own ConfigMaps
// and pods straight at an apiserver; after every write the writer LISTs through the proxy with
// resourceVersion unset (the namespace, a label selector the write affects, and across namespaces
// spec.nodeName=X for pods or the writer's label for ConfigMaps). Every answer must be the exact
// state at its own resourceVersion and reflect every write completed before it started (see
// test/helpers/ledger.ts). Run on the shared cluster (one apiserver) and on a cluster of three
// apiservers with the writes spread over them and the proxy in front of all three. Most reads
// must come from the cache: a test where everything is forwarded proves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCluster } from '../cluster/cluster.js';
import { proxyReady, sharedCluster, startTestProxy } from '../helpers/env.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { Ledger, now } from '../helpers/ledger.js';
import { cacheReport, newStats, quantile, runWriter, scrape, seed } from '../helpers/cache-workload.js';

const WRITERS = 8;
const WRITES_PER_WRITER = Number(process.env['KCP_RYW_WRITES'] ?? 150);
/** Freshness budget (3 s) plus a margin for a slow probe and forward. */
const MAX_READ_MS = 8_000;
const MIN_HIT_RATIO = 0.8;

async function readYourWrites(t: { diagnostic(m: string): void }, cluster: TestCluster, servers: readonly string[]): Promise<void> {
  const run = randomBytes(3).toString('hex');
  const namespaces = [`ryw-${run}-a`, `ryw-${run}-b`];
  const nodes = [0, 1, 2].map((i) => `ryw-${run}-node-${i}`);
  const ledger = new Ledger();
  await seed(cluster, servers[0] ?? '', ledger, namespaces, nodes, 10);
  const proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}), upstreams: [...servers] });
  try {
    await proxyReady(proxy);
    const stats = newStats();
    const before = await scrape(proxy.metricsUrl);
    const started = now();
    const results = await Promise.all(Array.from({ length: WRITERS }, (_, i) => runWriter({
      cluster, proxyUrl: proxy.url, id: `${run}-w${i}`, namespaces, nodes, ledger, stats,
      policy: { allowErrors: false, maxMs: MAX_READ_MS },
      target: (n) => servers[(i + n) % servers.length],
      tolerateWriteErrors: false,
      done: (w) => w >= WRITES_PER_WRITER,
    })));
    const seconds = (now() - started) / 1000;
    const after = await scrape(proxy.metricsUrl);
    const verdict = ledger.judge(stats.observations);
    const writes = results.reduce((n, r) => n + r.writes, 0);
    const c = cacheReport(before, after, ['pods', 'configmaps']);
    t.diagnostic(`${servers.length} apiserver(s): ${writes} writes, ${stats.ok} LISTs checked in ${seconds.toFixed(1)} s; ` +
      `read ms p50=${quantile(stats.durationsMs, 0.5).toFixed(1)} p99=${quantile(stats.durationsMs, 0.99).toFixed(1)} max=${Math.max(...stats.durationsMs).toFixed(0)}`);
    t.diagnostic(`cache: served=${c.served} forwarded=${JSON.stringify(Object.fromEntries(c.fallbacks))} hit ratio=${c.hitRatio.toFixed(3)}`);
    t.diagnostic(`freshness waits: ${c.waits}`);
    assert.deepEqual(stats.violations.slice(0, 20), []);
    assert.deepEqual(verdict.slice(0, 20), []);
    assert.equal(writes, WRITERS * WRITES_PER_WRITER);
    assert.equal(stats.ok, writes * 3);
    assert.ok(c.hitRatio >= MIN_HIT_RATIO, `hit ratio ${c.hitRatio.toFixed(3)} < ${MIN_HIT_RATIO}: the cache hardly served`);
  } finally {
    await proxy.stop();
  }
}

test('read-your-writes through the cache: one apiserver (shared cluster)', async (t) => {
  const cluster = sharedCluster();
  const server = cluster.info.apiservers[0]?.url ?? '';
  await readYourWrites(t, cluster, [server]);
});

test('read-your-writes through the cache: three apiservers, writes spread over them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-ryw-'));
  const cluster = await TestCluster.up({ dir, apiservers: 3 });
  let ok = false;
  try {
    await readYourWrites(t, cluster, cluster.info.apiservers.map((a) => a.url));
    ok = true;
  } finally {
    await cluster.down();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else t.diagnostic(`cluster logs kept in ${dir}/logs`);
  }
});
