// Populating the benchmark cluster directly (namespaces, Nodes, optionally ConfigMaps, Pods) with
// bench/objects.ts' objects, at a fixed concurrency over the client's keep-alive pool (bench/run.ts
// and bench/watch.ts).
import { writeWithRetry, type Client } from './client.js';
import { configMapObject, namespaceName, namespaceObject, nodeObject, podObject, podRef, type Layout } from './objects.js';
import { sleep } from './stats.js';

export async function parallel(total: number, concurrency: number, what: string, fn: (i: number) => Promise<void>, log: (msg: string) => void): Promise<number> {
  let next = 0;
  let done = 0;
  const started = performance.now();
  let lastLog = started;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      await fn(i);
      done++;
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        log(`  ${what}: ${done}/${total} (${Math.round(done / ((now - started) / 1000))}/s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return (performance.now() - started) / 1000;
}

/** Creates the layout's objects; returns the total time and the time the pods took. */
export async function populate(layout: Layout, direct: Client, concurrency: number, log: (msg: string) => void): Promise<{ seconds: number; podSeconds: number }> {
  const started = performance.now();
  const json = (v: unknown) => JSON.stringify(v);
  await parallel(layout.namespaces, concurrency, 'namespaces', (i) => writeWithRetry(direct, 'POST', '/api/v1/namespaces', json(namespaceObject(i))), log);
  // The namespace lifecycle admission reads namespaces from an informer: give it a moment.
  await sleep(1000);
  await parallel(layout.nodes, concurrency, 'nodes', (i) => writeWithRetry(direct, 'POST', '/api/v1/nodes', json(nodeObject(i))), log);
  const cms = layout.namespaces * layout.configMapsPerNamespace;
  await parallel(cms, concurrency, 'configmaps', (i) => {
    const ns = Math.floor(i / layout.configMapsPerNamespace);
    return writeWithRetry(direct, 'POST', `/api/v1/namespaces/${namespaceName(ns)}/configmaps`, json(configMapObject(ns, i % layout.configMapsPerNamespace)));
  }, log);
  const podSeconds = await parallel(layout.pods, concurrency, 'pods', (i) => {
    const ref = podRef(i, layout);
    return writeWithRetry(direct, 'POST', `/api/v1/namespaces/${ref.namespace}/pods`, json(podObject(i, layout)));
  }, log);
  return { seconds: (performance.now() - started) / 1000, podSeconds };
}
