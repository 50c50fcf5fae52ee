// The proxy under test in the watch benchmark: started with an inspector (for forced garbage
// collections), and its memory as its /metrics report it.
import type { TestCluster } from '../test/cluster/cluster.js';
import { freePort } from '../test/cluster/processes.js';
import { Client } from './client.js';
import { Inspector } from './inspector.js';
import { sum } from './prom.js';
import { ProxyProcess } from './proxy-process.js';
import { sleep } from './stats.js';
import { log } from './watch-log.js';
import type { ProxyMemory } from './watch-results.js';

export async function proxyMemory(proxy: ProxyProcess): Promise<ProxyMemory> {
  const m = await proxy.metrics();
  return { rssBytes: sum(m, 'process_resident_memory_bytes'), heapUsedBytes: sum(m, 'nodejs_heap_size_used_bytes'), externalBytes: sum(m, 'nodejs_external_memory_bytes') };
}

/**
 * Samples once a second for `seconds` and keeps the lowest of each (no forced GC is possible from
 * outside: the lowest is closest to what is live after a collection).
 */
export async function settledMemory(px: ProxyHandle, seconds: number): Promise<ProxyMemory> {
  const samples: ProxyMemory[] = [await proxyMemory(px.proxy)];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await sleep(Math.min(1000, Math.max(0, end - performance.now())));
    samples.push(await proxyMemory(px.proxy));
  }
  // With the proxy's inspector: a full collection, then one sample (the live heap, exactly).
  if (px.inspector) {
    await px.inspector.collectGarbage();
    return proxyMemory(px.proxy);
  }
  const min = (f: (m: ProxyMemory) => number) => Math.min(...samples.map(f));
  return { rssBytes: min((m) => m.rssBytes), heapUsedBytes: min((m) => m.heapUsedBytes), externalBytes: min((m) => m.externalBytes) };
}

/** The proxy under test, with its inspector (for forced collections) and a client for its LISTs. */
export interface ProxyHandle {
  readonly proxy: ProxyProcess;
  readonly inspector: Inspector | undefined;
  readonly client: Client;
}

/** Starts the proxy with its inspector on a loopback port (NODE_OPTIONS, for this spawn only). */
export async function startProxy(cluster: TestCluster, logFile: string, args: readonly string[], ca: Buffer, token: string): Promise<ProxyHandle> {
  const port = await freePort();
  const saved = process.env['NODE_OPTIONS'];
  process.env['NODE_OPTIONS'] = `${saved ?? ''} --inspect=127.0.0.1:${port}`.trim();
  let proxy: ProxyProcess;
  try {
    proxy = await ProxyProcess.start(cluster, logFile, args);
  } finally {
    if (saved === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = saved;
  }
  const inspector = await Inspector.connect(port);
  if (!inspector) log('  (no inspector connection to the proxy: memory is the lowest of the samples, without a forced collection)');
  return { proxy, inspector, client: new Client('proxy', proxy.url, { ca, token, connections: 4 }) };
}
