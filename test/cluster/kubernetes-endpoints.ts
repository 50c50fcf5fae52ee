// The `kubernetes` Service's Endpoints and EndpointSlice in `default`, as kube-apiserver's endpoint
// reconciler writes them (pkg/controlplane/reconcilers, v1.37: lease.go doReconcile builds the
// Endpoints, endpointsadapter.go mirrors it into the EndpointSlice). The test cluster runs with
// `--endpoint-reconciler-type=none` and writes them itself, for a chosen set of apiservers.
//
// What the reconciler writes:
// - Endpoints `kubernetes`: label `endpointslice.kubernetes.io/skip-mirror: "true"` (the mirroring
//   controller must leave it alone), one subset with the apiservers' IPs sorted (RepackSubsets) and
//   the port `https`/TCP; no subset at all when there is no address.
// - EndpointSlice `kubernetes`: label `kubernetes.io/service-name: kubernetes`, addressType IPv4, the
//   subset's ports, one endpoint per address with only `conditions.ready` set (true for addresses,
//   false for notReadyAddresses); no ports and no endpoints when the subset is gone. Not rewritten
//   when endpoints, ports and labels are unchanged.
// The Service itself is created by the apiserver's kubernetes-service controller whatever the
// reconciler type (port 443 named https, targetPort the apiservers' secure port).
//
// They are written straight into etcd, not through the API: the API refuses loopback addresses in
// Endpoints and EndpointSlices (ValidateEndpointIP), and the test cluster's apiservers are on
// loopback. The apiserver serves whatever etcd holds (its storage decoder reads JSON as well as its
// own protobuf), watches included, so clients see exactly what a reconciler's write would show.
import { randomUUID } from 'node:crypto';

export interface KubernetesEndpoint {
  readonly ip: string;
  readonly ready: boolean;
}

type Json = Record<string, unknown>;

export const ENDPOINTS_KEY = '/registry/services/endpoints/default/kubernetes';
export const ENDPOINT_SLICE_KEY = '/registry/endpointslices/default/kubernetes';

function compareIp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The Endpoints' subsets and the EndpointSlice's content, without metadata. */
export function reconcilerContent(port: number, eps: readonly KubernetesEndpoint[]): { subsets: Json[]; slice: Json } {
  const ready = eps.filter((e) => e.ready).map((e) => e.ip).sort(compareIp);
  const notReady = eps.filter((e) => !e.ready).map((e) => e.ip).sort(compareIp);
  const ports = [{ name: 'https', port, protocol: 'TCP' }];
  if (ready.length + notReady.length === 0) {
    return { subsets: [], slice: { addressType: 'IPv4', endpoints: null, ports: null } };
  }
  const subset: Json = { ports };
  if (ready.length) subset['addresses'] = ready.map((ip) => ({ ip }));
  if (notReady.length) subset['notReadyAddresses'] = notReady.map((ip) => ({ ip }));
  const endpoints = [
    ...ready.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
    ...notReady.map((ip) => ({ addresses: [ip], conditions: { ready: false } })),
  ];
  return { subsets: [subset], slice: { addressType: 'IPv4', endpoints, ports } };
}

interface Stored {
  readonly metadata: Json;
  readonly body: Json;
}

function parseStored(value: Buffer | undefined): Stored | undefined {
  // The apiserver's own writes are protobuf ("k8s\0" …); only a JSON value is one of ours.
  if (!value || value[0] !== 0x7b) return undefined;
  const v: unknown = JSON.parse(value.toString('utf8'));
  if (typeof v !== 'object' || v === null) return undefined;
  const body = v as Json;
  const m = body['metadata'];
  return typeof m === 'object' && m !== null ? { metadata: m as Json, body } : undefined;
}

/** Metadata as the apiserver would keep it across updates: same uid and creation time, generation +1. */
function metadataFor(previous: Stored | undefined, labels: Json, generation: boolean): Json {
  const m: Json = {
    name: 'kubernetes',
    namespace: 'default',
    uid: typeof previous?.metadata['uid'] === 'string' ? previous.metadata['uid'] : randomUUID(),
    creationTimestamp: typeof previous?.metadata['creationTimestamp'] === 'string'
      ? previous.metadata['creationTimestamp'] : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    labels,
  };
  if (generation) {
    const g = previous?.metadata['generation'];
    m['generation'] = typeof g === 'number' ? g + 1 : 1;
  }
  return m;
}

export interface EtcdKv {
  get(key: string): Promise<{ readonly value: Buffer; readonly modRevision: string } | undefined>;
  /** Returns the revision of the write. */
  put(key: string, value: string): Promise<string>;
}

function field(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Json)[key] : undefined;
}

/** Keys and values through etcd's JSON gateway (`post` sends one request to it). */
export function etcdKv(post: (path: string, body: unknown) => Promise<unknown>): EtcdKv {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    async get(key) {
      const kvs = field(await post('/v3/kv/range', { key: b64(key) }), 'kvs');
      const first: unknown = Array.isArray(kvs) ? kvs[0] : undefined;
      const value = field(first, 'value');
      return typeof value === 'string' ? { value: Buffer.from(value, 'base64'), modRevision: String(field(first, 'mod_revision')) } : undefined;
    },
    put: async (key, value) => String(field(field(await post('/v3/kv/put', { key: b64(key), value: b64(value) }), 'header'), 'revision')),
  };
}

/**
 * Writes both objects (Endpoints first, then the slice, like the adapter) unless the slice already
 * has this content. Returns the slice's resourceVersion (the etcd revision of its last write).
 */
export async function writeReconcilerObjects(kv: EtcdKv, port: number, eps: readonly KubernetesEndpoint[]): Promise<string> {
  const { subsets, slice } = reconcilerContent(port, eps);
  const current = await kv.get(ENDPOINT_SLICE_KEY);
  const prevSlice = parseStored(current?.value);
  const sliceLabels = { 'kubernetes.io/service-name': 'kubernetes' };
  const same = prevSlice !== undefined && ['addressType', 'endpoints', 'ports'].every((k) => JSON.stringify(prevSlice.body[k] ?? null) === JSON.stringify(slice[k] ?? null));
  if (same && current) return current.modRevision;
  const prevEndpoints = parseStored((await kv.get(ENDPOINTS_KEY))?.value);
  await kv.put(ENDPOINTS_KEY, JSON.stringify({
    kind: 'Endpoints', apiVersion: 'v1',
    metadata: metadataFor(prevEndpoints, { 'endpointslice.kubernetes.io/skip-mirror': 'true' }, false),
    subsets,
  }));
  return kv.put(ENDPOINT_SLICE_KEY, JSON.stringify({
    kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1',
    metadata: metadataFor(prevSlice, sliceLabels, true),
    ...slice,
  }));
}
