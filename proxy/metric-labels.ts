// Label values of the request metrics come from bounded sets, never from what a client typed: a
// request path or an HTTP/2 :method can be anything, and every distinct label value is a new time
// series kept in memory until the proxy restarts. The resource label is a cached resource, a
// built-in Kubernetes resource (the fixed list below, Kubernetes 1.3x with its beta and alpha
// groups), or `other`; the subresource is one of Kubernetes' built-in subresources or `other`.
import type { RequestInfo } from './request-info.js';
import { resourceName } from '../cache/resource-type.js';

/** Built-in resources by API group, as kube-apiserver serves them (aggregated metrics.k8s.io too). */
const BUILTIN_RESOURCES: Readonly<Record<string, readonly string[]>> = {
  '': ['bindings', 'componentstatuses', 'configmaps', 'endpoints', 'events', 'limitranges', 'namespaces', 'nodes',
    'persistentvolumeclaims', 'persistentvolumes', 'pods', 'podtemplates', 'replicationcontrollers', 'resourcequotas',
    'secrets', 'serviceaccounts', 'services'],
  'admissionregistration.k8s.io': ['mutatingadmissionpolicies', 'mutatingadmissionpolicybindings', 'mutatingwebhookconfigurations',
    'validatingadmissionpolicies', 'validatingadmissionpolicybindings', 'validatingwebhookconfigurations'],
  'apiextensions.k8s.io': ['customresourcedefinitions'],
  'apiregistration.k8s.io': ['apiservices'],
  'apps': ['controllerrevisions', 'daemonsets', 'deployments', 'replicasets', 'statefulsets'],
  'authentication.k8s.io': ['selfsubjectreviews', 'tokenreviews'],
  'authorization.k8s.io': ['localsubjectaccessreviews', 'selfsubjectaccessreviews', 'selfsubjectrulesreviews', 'subjectaccessreviews'],
  'autoscaling': ['horizontalpodautoscalers'],
  'batch': ['cronjobs', 'jobs'],
  'certificates.k8s.io': ['certificatesigningrequests', 'clustertrustbundles', 'podcertificaterequests'],
  'coordination.k8s.io': ['leases', 'leasecandidates'],
  'discovery.k8s.io': ['endpointslices'],
  'events.k8s.io': ['events'],
  'flowcontrol.apiserver.k8s.io': ['flowschemas', 'prioritylevelconfigurations'],
  'internal.apiserver.k8s.io': ['storageversions'],
  'metrics.k8s.io': ['nodes', 'pods'],
  'networking.k8s.io': ['ingressclasses', 'ingresses', 'ipaddresses', 'networkpolicies', 'servicecidrs'],
  'node.k8s.io': ['runtimeclasses'],
  'policy': ['poddisruptionbudgets'],
  'rbac.authorization.k8s.io': ['clusterrolebindings', 'clusterroles', 'rolebindings', 'roles'],
  'resource.k8s.io': ['deviceclasses', 'devicetaintrules', 'resourceclaims', 'resourceclaimtemplates', 'resourceslices'],
  'scheduling.k8s.io': ['priorityclasses', 'workloads'],
  'storage.k8s.io': ['csidrivers', 'csinodes', 'csistoragecapacities', 'storageclasses', 'volumeattachments', 'volumeattributesclasses'],
  'storagemigration.k8s.io': ['storageversionmigrations'],
};

/** Kubernetes' built-in subresources (status, scale, and the pod, node, service and namespace ones). */
const BUILTIN_SUBRESOURCES: readonly string[] = [
  'approval', 'attach', 'binding', 'ephemeralcontainers', 'eviction', 'exec', 'finalize', 'log', 'portforward',
  'proxy', 'resize', 'rollback', 'scale', 'status', 'token',
];

/** Kube verbs of resource requests, and the lowercase methods of non-resource requests. */
export const KNOWN_VERBS: readonly string[] = [
  'get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'proxy',
  'post', 'put', 'head', 'options', 'connect', 'trace',
];

export const OTHER = 'other';

export interface RequestLabels {
  /** The resource label of a request ('' for non-resource requests). */
  resource(info: RequestInfo): string;
  verb(info: RequestInfo): string;
  /** Every value resource() can return: its size is the label's bound. */
  readonly resourceValues: ReadonlySet<string>;
}

/** Labels bounded by the built-in resources plus the cached ones (`{group, resource}` of the cache's config). */
export function requestLabels(cached: ReadonlyArray<{ readonly group: string; readonly resource: string }>): RequestLabels {
  const resources = new Set<string>();
  for (const [group, names] of Object.entries(BUILTIN_RESOURCES)) for (const r of names) resources.add(resourceName({ group, resource: r }));
  for (const c of cached) resources.add(resourceName(c));
  const subresources = new Set(BUILTIN_SUBRESOURCES);
  const verbs = new Set(KNOWN_VERBS);
  const values = new Set<string>(['', OTHER]);
  for (const r of resources) {
    values.add(r);
    values.add(`${r}/${OTHER}`);
    for (const s of subresources) values.add(`${r}/${s}`);
  }
  return {
    resource(info) {
      if (!info.isResourceRequest) return '';
      const r = resourceName({ group: info.apiGroup, resource: info.resource });
      if (!resources.has(r)) return OTHER;
      if (!info.subresource) return r;
      return `${r}/${subresources.has(info.subresource) ? info.subresource : OTHER}`;
    },
    verb(info) {
      return verbs.has(info.verb) ? info.verb : OTHER;
    },
    resourceValues: values,
  };
}
