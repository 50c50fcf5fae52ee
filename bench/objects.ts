// The benchmark's cluster content: namespaces, Nodes, ConfigMaps and realistic Pods (3–5 KB of JSON
// as the apiserver stores them: several containers with env, resources, probes, volume mounts,
// volumes, owner reference, labels and annotations like a Deployment's pods carry).
import { createHash } from 'node:crypto';

/** Number of distinct `app` label values: `app=<x>` selects about 1% of the pods. */
export const APP_COUNT = 100;
const TIERS = ['frontend', 'backend', 'cache', 'worker', 'db'] as const;
const ZONES = ['zone-a', 'zone-b', 'zone-c'] as const;
const HASH_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export interface PodRef {
  readonly namespace: string;
  readonly name: string;
}

export interface Layout {
  readonly nodes: number;
  readonly pods: number;
  readonly namespaces: number;
  readonly configMapsPerNamespace: number;
}

export const namespaceName = (i: number): string => `bench-${String(i).padStart(3, '0')}`;
export const nodeName = (i: number): string => `bench-node-${String(i).padStart(5, '0')}`;
export const appName = (i: number): string => `svc-${String(i % APP_COUNT).padStart(2, '0')}`;

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** A kube-style random-looking suffix (like a pod-template-hash), deterministic in `seed`. */
function kubeHash(seed: string, length: number): string {
  const d = createHash('sha256').update(seed).digest();
  let out = '';
  for (let i = 0; i < length; i++) out += HASH_ALPHABET[(d[i] ?? 0) % HASH_ALPHABET.length];
  return out;
}

function uid(seed: string): string {
  const h = digest(seed);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function namespaceObject(i: number): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: namespaceName(i), labels: { 'kubernetes.io/metadata.name': namespaceName(i), team: `team-${i % 17}`, 'bench/owner': 'kube-cache-proxy-bench' } },
  };
}

export function nodeObject(i: number): unknown {
  const name = nodeName(i);
  const zone = ZONES[i % ZONES.length] ?? 'zone-a';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': i % 4 === 0 ? 'm6i.4xlarge' : 'm6i.2xlarge',
        'topology.kubernetes.io/region': 'bench-region-1',
        'topology.kubernetes.io/zone': zone,
        'node-role.kubernetes.io/worker': '',
      },
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
    },
    spec: { podCIDR: `10.${64 + ((i >> 8) & 63)}.${i & 255}.0/24`, podCIDRs: [`10.${64 + ((i >> 8) & 63)}.${i & 255}.0/24`], providerID: `bench://${zone}/${name}` },
    status: {
      capacity: { cpu: '16', 'ephemeral-storage': '203070420Ki', 'hugepages-2Mi': '0', memory: '65023436Ki', pods: '110' },
      allocatable: { cpu: '15890m', 'ephemeral-storage': '187149698763', 'hugepages-2Mi': '0', memory: '62829516Ki', pods: '110' },
      addresses: [{ type: 'InternalIP', address: `10.0.${(i >> 8) & 255}.${i & 255}` }, { type: 'Hostname', address: name }],
      nodeInfo: {
        machineID: digest(`machine-${i}`).slice(0, 32), systemUUID: uid(`system-${i}`), bootID: uid(`boot-${i}`),
        kernelVersion: '6.8.0-1021-aws', osImage: 'Ubuntu 24.04.1 LTS', containerRuntimeVersion: 'containerd://1.7.24',
        kubeletVersion: 'v1.37.2', kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'amd64',
      },
    },
  };
}

export function configMapObject(ns: number, k: number, revision = 0): unknown {
  const app = appName(ns * 31 + k);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: `${app}-config-${k}`, namespace: namespaceName(ns), labels: { app, 'bench/kind': 'config' } },
    data: {
      'application.yaml': `server:\n  port: 8080\n  shutdownTimeout: 25s\nlogging:\n  level: info\n  format: json\ncache:\n  host: redis.${namespaceName(ns)}.svc\n  ttl: 300s\nfeatures:\n  checkout-v2: ${k % 2 === 0}\n  recommendations: true\n`,
      LOG_LEVEL: 'info',
      MAX_CONNECTIONS: String(100 + k),
      revision: String(revision),
    },
  };
}

/** Where pod i lives: namespaces hold contiguous ranges, nodes and apps are spread round-robin. */
export function podPlacement(i: number, l: Layout): { ns: number; node: number; app: string } {
  const perNs = Math.ceil(l.pods / l.namespaces);
  return { ns: Math.min(l.namespaces - 1, Math.floor(i / perNs)), node: i % l.nodes, app: appName(i) };
}

export function podRef(i: number, l: Layout): PodRef {
  const p = podPlacement(i, l);
  const version = `v${1 + (i % 3)}`;
  const templateHash = kubeHash(`${p.app}-${version}`, 10);
  return { namespace: namespaceName(p.ns), name: `${p.app}-${templateHash}-${kubeHash(`pod-${i}`, 5)}${i.toString(36)}` };
}

export function podObject(i: number, l: Layout): unknown {
  const p = podPlacement(i, l);
  const ref = podRef(i, l);
  const version = `v${1 + (i % 3)}`;
  const appIndex = i % APP_COUNT;
  const tier = TIERS[appIndex % TIERS.length] ?? 'backend';
  const templateHash = kubeHash(`${p.app}-${version}`, 10);
  const rs = `${p.app}-${templateHash}`;
  const image = `ghcr.io/shop/${p.app}:1.${appIndex % 20}.${i % 3}`;
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  // As stored (with the apiserver's defaults and the creator's managedFields) this is about 5 KB
  // (half of it managedFields, as every real object has).
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: ref.name,
      namespace: ref.namespace,
      generateName: `${rs}-`,
      labels: { app: p.app, tier, version, 'pod-template-hash': templateHash },
      annotations: { 'prometheus.io/scrape': 'true' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: uid(`rs-${ref.namespace}-${rs}`), controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: nodeName(p.node),
      containers: [
        {
          name: 'app',
          image,
          ports: [{ name: 'http', containerPort: 8080 }],
          env: [
            fieldEnv('POD_NAME', 'metadata.name'),
            fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
          ],
          resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
          livenessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10 },
          readinessProbe: { httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 5 },
          volumeMounts: [{ name: 'config', mountPath: '/etc/app', readOnly: true }, { name: 'tmp', mountPath: '/tmp' }],
        },
        {
          name: 'log-shipper',
          image: 'ghcr.io/infra/fluent-bit:3.2.4',
          env: [fieldEnv('POD_NAME', 'metadata.name')],
          resources: { requests: { cpu: '20m', memory: '32Mi' }, limits: { memory: '128Mi' } },
          volumeMounts: [{ name: 'tmp', mountPath: '/tmp', readOnly: true }],
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: `${p.app}-config` } },
        { name: 'tmp', emptyDir: {} },
      ],
    },
  };
}
