// Request paths for the fuzz test: the cached resources' collections and objects, other API and
// non-resource paths, and mutations of all of them.
import type { Rng } from '../prng.js';
import { collection, NAMESPACED, RESOURCES, type Resource, type World } from './fixture.js';
import { mutate, printable } from './mutate.js';

export interface ReadTarget {
  readonly resource: Resource;
  readonly namespace: string | undefined;
  /** Set for a GET of one object (possibly one that does not exist). */
  readonly name: string | undefined;
  readonly path: string;
}

/** A LIST or GET of a cached resource, in a namespace of the run's, cluster-wide, or of an object (existing or not). */
export function readTarget(rng: Rng, w: World): ReadTarget {
  const resource = rng.weighted<Resource>([[4, 'pods'], [2, 'configmaps'], [1, 'services'], [1, 'endpointslices'], [1, 'namespaces'], [1, 'nodes']]);
  const namespaced = NAMESPACED.includes(resource);
  const namespace = namespaced && rng.chance(0.7) ? (rng.chance(0.95) ? rng.pick(w.namespaces) : rng.pick([`${w.prefix}-none`, 'default'])) : undefined;
  let name: string | undefined;
  if (rng.chance(0.25)) {
    if (resource === 'nodes') name = rng.chance(0.85) ? rng.pick(w.nodes) : `${w.prefix}-no-such`;
    else if (resource === 'namespaces') name = rng.chance(0.85) ? rng.pick(w.namespaces) : `${w.prefix}-no-such`;
    else if (namespace !== undefined) {
      const here = w.objects[resource as keyof World['objects']].filter((m) => m.ns === namespace);
      name = here.length > 0 && rng.chance(0.85) ? rng.pick(here).name : rng.pick(['no-such', 'a', 'A', 'a..b', '-a']);
    }
  }
  const base = collection(resource, namespace);
  return { resource, namespace, name, path: name === undefined ? base : `${base}/${name}` };
}

const OTHER_PATHS = [
  '/version', '/api', '/api/v1', '/apis', '/apis/discovery.k8s.io/v1', '/apis/apps/v1', '/healthz', '/livez', '/readyz', '/openapi/v3',
  '/api/v1/secrets', '/api/v1/namespaces/default/secrets', '/api/v1/events', '/apis/apps/v1/deployments', '/apis/coordination.k8s.io/v1/leases',
  '/api/v1/namespaces/default/serviceaccounts/default', '/api/v1/componentstatuses', '/apis/storage.k8s.io/v1/storageclasses',
  '/api/v1/namespaces/default/pods/x/log', '/api/v1/namespaces/default/pods/x/status', '/api/v1/namespaces/default/pods/x/exec', '/api/v1/nodes/x/proxy/',
  '/api/v1/namespaces/default/services/x:80/proxy/', '/apis/nosuch.example/v1/things', '/api/v2/pods', '/', '', '/api/v1/namespaces/default/pods/x/eviction',
];

/** Any path: a cached resource's, another API's, or a mutation of either. */
export function anyPath(rng: Rng, w: World): string {
  const base = rng.chance(0.6) ? readTarget(rng, w).path : rng.pick(OTHER_PATHS);
  const r = rng.int(10);
  let p: string;
  if (r < 5) p = mutate(rng, base);
  else if (r === 5) p = base.split('/').map((s) => (rng.chance(0.2) ? encodeURIComponent(s).replaceAll('-', '%2D') : s)).join('/');
  else if (r === 6) p = `${base}/${rng.pick(['', 'status', 'scale', 'x', '..', '.', 'log', 'proxy', 'binding', 'ephemeralcontainers'])}`;
  else if (r === 7) p = base.replace(/^\/api\/v1/, rng.pick(['/api/v1/', '/api//v1', '/API/v1', '/api/v1beta1', '/apis/v1', '/api/v1/namespaces']));
  else if (r === 8) p = `${base}${'/x'.repeat(rng.between(1, 30))}`;
  else p = base;
  const out = printable(p);
  return out.startsWith('/') ? out : `/${out}`;
}

export { RESOURCES };
