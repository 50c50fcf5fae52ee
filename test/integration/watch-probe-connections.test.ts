// What a watch served from the cache costs the apiserver: one probe, on a kept-alive connection.
// A probe cut off once it has answered would close its connection, and every client watch would
// cost a new TCP and TLS handshake with the apiserver (in a storm of 2,000 kubelets, a fifth of
// the proxy's CPU). Closed connections to the apiserver's port linger in TIME-WAIT: count them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';

const cluster = sharedCluster();
const agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) } });
let proxy: TestProxy | undefined;
after(async () => {
  await proxy?.stop();
  await agent.close();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function closedConnectionsTo(port: number): number {
  const out = execFileSync('ss', ['-tnH', 'state', 'time-wait', 'dport', '=', `:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

test('70 watches from the cache (from a resourceVersion, and watch-lists) close no connection to the apiserver', async () => {
  proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}) });
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${proxy.metricsUrl}/readyz`);
    await r.text();
    if (r.status === 200) break;
    await sleep(100);
  }
  const port = cluster.info.apiservers[0]?.port ?? 0;
  const headers = { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` };
  const list = await request(`${proxy.url}/api/v1/namespaces/default/configmaps`, { dispatcher: agent, headers });
  const rv = (JSON.parse(await list.body.text()) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  const before = closedConnectionsTo(port);
  const watches = [];
  for (let i = 0; i < 50; i++) watches.push(await request(`${proxy.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${rv}`, { dispatcher: agent, headers }));
  for (let i = 0; i < 20; i++) watches.push(await request(`${proxy.url}/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true`, { dispatcher: agent, headers }));
  assert.deepEqual([...new Set(watches.map((w) => w.statusCode))], [200]);
  // Long enough for every probe to end by itself (1 s, and 4 s for the watch-lists' probes).
  await sleep(6000);
  const closed = closedConnectionsTo(port) - before;
  for (const w of watches) w.body.destroy();
  assert.ok(closed <= 2, `${closed} connections to the apiserver were closed for 70 watches`);
});
