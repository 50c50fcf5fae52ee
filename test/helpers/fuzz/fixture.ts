// The objects the fuzz test reads: a few namespaces of pods, configmaps, services and endpointslices,
// and some nodes, all labelled kcpfuzz=<prefix>. Made once before the cases run; the cluster is then
// held still (the cases write only with dryRun=All) so that the proxy's answers can equal the apiserver's.
import type { TestCluster } from '../../cluster/cluster.js';
import { call } from '../http.js';
import { Rng } from '../prng.js';

export type Resource = 'pods' | 'configmaps' | 'services' | 'endpointslices' | 'namespaces' | 'nodes';
export const NAMESPACED: readonly Resource[] = ['pods', 'configmaps', 'services', 'endpointslices'];
export const RESOURCES: readonly Resource[] = ['pods', 'configmaps', 'services', 'endpointslices', 'namespaces', 'nodes'];

export interface Made { readonly ns: string; readonly name: string }

export interface World {
  /** The run's prefix of every name (random, constant length). */
  readonly prefix: string;
  readonly namespaces: readonly string[];
  readonly nodes: readonly string[];
  readonly objects: Readonly<Record<'pods' | 'configmaps' | 'services' | 'endpointslices', readonly Made[]>>;
  /** A resourceVersion the cluster had once the objects were made. */
  readonly recentRV: string;
}

export function collection(r: Resource, ns: string | undefined): string {
  const prefix = r === 'endpointslices' ? '/apis/discovery.k8s.io/v1' : '/api/v1';
  return ns === undefined || !NAMESPACED.includes(r) ? `${prefix}/${r}` : `${prefix}/namespaces/${ns}/${r}`;
}

const POD_BASES = ['a', 'a-b', 'a.b', 'ab', 'b'];

function labels(rng: Rng, prefix: string): Record<string, string> {
  const l: Record<string, string> = { kcpfuzz: prefix };
  if (rng.chance(0.85)) l['app'] = rng.pick(['web', 'db', 'cache']);
  if (rng.chance(0.6)) l['tier'] = rng.pick(['front', 'back', '']);
  if (rng.chance(0.7)) l['version'] = rng.pick(['1', '2', '3', '10', '007']);
  if (rng.chance(0.1)) l['example.com/x'] = 'y';
  return l;
}

async function create(cluster: TestCluster, path: string, body: unknown): Promise<void> {
  const r = await call(cluster, cluster.info.apiservers[0]?.url ?? '', path, { method: 'POST', body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${r.text()}`);
}

async function pool<T>(items: readonly T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await f(items[i++] as T);
  }));
}

/** Makes the objects (decided by `seed` alone, but for the prefix). */
export async function makeWorld(cluster: TestCluster, prefix: string, seed: number): Promise<World> {
  const rng = new Rng(seed);
  const namespaces = [0, 1, 2].map((i) => `${prefix}-${['a', 'a-b', 'b'][i] ?? ''}`);
  const nodes = ['n0', 'n1', 'n1-a', 'n10'].map((n) => `${prefix}-${n}`);
  const objects = { pods: [] as Made[], configmaps: [] as Made[], services: [] as Made[], endpointslices: [] as Made[] };
  await pool(namespaces, 3, (ns) => create(cluster, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: labels(rng, prefix) } }));
  await pool(nodes, 4, (name) => create(cluster, '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: labels(rng, prefix) }, spec: rng.chance(0.4) ? { unschedulable: true } : {} }));
  const planned: Array<[string, unknown]> = [];
  namespaces.forEach((ns, i) => {
    for (let n = 0; n < 24 - i * 6; n++) {
      const name = `${rng.pick(POD_BASES)}${rng.pick(['-', '.', ''])}${n}`;
      const spec: Record<string, unknown> = { containers: [{ name: 'c', image: 'registry.example/demo:1' }], restartPolicy: rng.pick(['Always', 'Never']) };
      if (rng.chance(0.8)) spec['nodeName'] = rng.pick(nodes);
      if (rng.chance(0.3)) spec['serviceAccountName'] = 'sa-a';
      objects.pods.push({ ns, name });
      planned.push([`/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: labels(rng, prefix) }, spec }]);
    }
    for (const name of ['a', 'a-b', 'a.b', 'cfg-1', 'cfg-10', 'z']) {
      objects.configmaps.push({ ns, name });
      planned.push([`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: labels(rng, prefix) }, data: { text: `<${name}> & é`, n: String(rng.int(1000)) } }]);
    }
    for (const [name, spec] of [['web', { ports: [{ port: 80 }], selector: { app: 'web' } }], ['headless', { clusterIP: 'None', ports: [{ port: 5432 }] }]] as const) {
      objects.services.push({ ns, name });
      planned.push([`/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name, labels: labels(rng, prefix) }, spec }]);
    }
    for (const name of ['web-abc', 'web-abd']) {
      objects.endpointslices.push({ ns, name });
      planned.push([`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, labels: { ...labels(rng, prefix), 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4', endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true } }], ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
      }]);
    }
  });
  await pool(planned, 12, ([path, body]) => create(cluster, path, body));
  const r = await call(cluster, cluster.info.apiservers[0]?.url ?? '', '/api/v1/namespaces?limit=1');
  const meta = (r.json() as { metadata?: { resourceVersion?: string } }).metadata;
  return { prefix, namespaces, nodes, objects, recentRV: meta?.resourceVersion ?? '0' };
}

/** Deletes what makeWorld made (best effort). */
export async function removeWorld(cluster: TestCluster, w: Pick<World, 'namespaces' | 'nodes'>): Promise<void> {
  const base = cluster.info.apiservers[0]?.url ?? '';
  const del = (path: string) => call(cluster, base, path, { method: 'DELETE' }).catch(() => undefined);
  for (const ns of w.namespaces) {
    await del(`/api/v1/namespaces/${ns}/pods?gracePeriodSeconds=0`);
    await del(`/api/v1/namespaces/${ns}/configmaps`);
    await del(`/api/v1/namespaces/${ns}/services/web`);
    await del(`/api/v1/namespaces/${ns}/services/headless`);
    await del(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`);
  }
  for (const n of w.nodes) await del(`/api/v1/nodes/${n}`);
  for (const ns of w.namespaces) {
    await del(`/api/v1/namespaces/${ns}`);
    // No namespace controller runs in the test cluster: finalize the (now empty) namespace ourselves.
    await call(cluster, base, `/api/v1/namespaces/${ns}/finalize`, {
      method: 'PUT', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns }, spec: { finalizers: [] } }),
    }).catch(() => undefined);
  }
}
