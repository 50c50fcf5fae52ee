// Memory in `npm run bench`: the proxy's from its /metrics (RSS, heap, external) against the raw JSON
// bytes it caches (kube_cache_proxy_cache_bytes: the objects' JSON as list items, uncompressed,
// though they are stored compressed), and the apiserver's own RSS from /proc as the anchor.
import { cpuDelta, rssBytes, sampleCpu } from './proc.js';
import { sum, sumBy } from './prom.js';
import type { ProxyProcess } from './proxy-process.js';
import type { MemoryResult, ProcessMemory } from './results.js';
import { round, sleep } from './stats.js';

export async function proxyMemory(proxy: ProxyProcess, when: string): Promise<MemoryResult> {
  const m = await proxy.metrics();
  const cacheBytes = sumBy(m, 'kube_cache_proxy_cache_bytes', 'resource');
  const cacheObjects = sumBy(m, 'kube_cache_proxy_cache_objects', 'resource');
  return {
    when,
    rssBytes: sum(m, 'process_resident_memory_bytes'),
    heapUsedBytes: sum(m, 'nodejs_heap_size_used_bytes'),
    externalBytes: sum(m, 'nodejs_external_memory_bytes'),
    cacheBytes,
    cacheObjects,
    totalCacheBytes: Object.values(cacheBytes).reduce((a, b) => a + b, 0),
    totalObjects: Object.values(cacheObjects).reduce((a, b) => a + b, 0),
  };
}

/**
 * Lets a freshly synced proxy settle for `seconds`, sampling its memory once a second (no forced GC
 * is possible from outside: the lowest values are the closest to what is live after a collection),
 * and the idle CPU of the processes meanwhile.
 */
export async function settle(proxy: ProxyProcess, pids: Readonly<Record<string, number>>, seconds: number): Promise<{ memory: MemoryResult; idleCpuPerSecond: Record<string, number> }> {
  const idle0 = sampleCpu(pids);
  const samples: MemoryResult[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await sleep(Math.min(1000, Math.max(0, end - performance.now())));
    samples.push(await proxyMemory(proxy, 'settle'));
  }
  const idle1 = sampleCpu(pids);
  const idleSeconds = Math.max(1e-3, (idle1.at - idle0.at) / 1000);
  const idleCpuPerSecond = Object.fromEntries(Object.entries(cpuDelta(idle0, idle1)).map(([k, v]) => [k, round(v / idleSeconds, 4)]));
  const last = samples[samples.length - 1] ?? (await proxyMemory(proxy, 'settle'));
  const minOf = (f: (m: MemoryResult) => number) => Math.min(...samples.map(f), f(last));
  return {
    memory: {
      ...last,
      when: `after sync, lowest of ${samples.length} samples over ${seconds} s`,
      rssBytes: minOf((m) => m.rssBytes),
      heapUsedBytes: minOf((m) => m.heapUsedBytes),
      externalBytes: minOf((m) => m.externalBytes),
    },
    idleCpuPerSecond,
  };
}

/** The lowest VmRSS of a process over `samples` samples one second apart (the first at once). */
export async function lowestRss(pid: number, samples: number): Promise<number> {
  let low = rssBytes(pid);
  for (let i = 1; i < samples; i++) {
    await sleep(1000);
    low = Math.min(low, rssBytes(pid));
  }
  return low;
}

export function processMemory(beforeBytes: number, afterBytes: number): ProcessMemory {
  return { beforeBytes, afterBytes, growthBytes: afterBytes - beforeBytes };
}
