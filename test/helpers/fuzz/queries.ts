// Query strings for the fuzz test: the cacheable reads (selectors, limit, continue, resourceVersion
// modes of GET and LIST of the cached resources), watch parameters, and garbage.
import type { Rng } from '../prng.js';
import { NAMESPACED, type Made, type Resource, type World } from './fixture.js';
import { mutate } from './mutate.js';

export const LABELS_VALID = [
  '', 'app=web', 'app==db', 'app!=cache', 'app in (web,db)', 'app notin (web)', 'tier', '!tier', 'tier=', 'tier in ()', 'version>2', 'version<10',
  'version>0,version<3', 'version in (1,007)', 'app=web,tier=front', 'app in (web,cache),!version', 'app, tier!=back, version>1', '!kcpfuzz',
  'example.com/x', '!example.com/x,app notin ()', 'app=web,app=db', 'nosuchlabel', '!nosuchlabel', 'constructor', '__proto__=x', 'toString!=',
];
export const LABELS_INVALID = ['app in web', 'version>abc', 'app=web,', ',app', '!app=web', 'a b', 'app in (web', 'Äpp=1', `app=${'x'.repeat(64)}`, '=web', '!__proto__'];

function fieldSelectors(rng: Rng, w: World, r: Resource, ns: string | undefined): string[] {
  const anyNs = ns ?? rng.pick(w.namespaces);
  const list = (k: keyof World['objects']): Made[] => {
    const all = w.objects[k];
    const here = all.filter((m) => m.ns === anyNs);
    return [...(here.length > 0 ? here : all)];
  };
  const common = (k: keyof World['objects']): string[] => {
    const m = rng.pick(list(k));
    return [`metadata.name=${m.name}`, `metadata.name!=${m.name}`, `metadata.namespace=${m.ns}`, `metadata.namespace!=${m.ns}`, 'metadata.name=no-such', '', ',', 'metadata.uid=x', 'metadata.name', 'metadata.name=a=b'];
  };
  switch (r) {
    case 'pods': {
      const n = rng.pick(w.nodes);
      return [...common('pods'), `spec.nodeName=${n}`, `spec.nodeName!=${n}`, 'spec.nodeName=', 'status.phase=Pending', 'status.phase!=Running', 'spec.restartPolicy=Never',
        'spec.serviceAccountName=sa-a', 'spec.schedulerName=default-scheduler', 'spec.hostNetwork=false', 'status.podIP=', `spec.nodeName=${n},status.phase=Pending`, 'spec.foo=bar', 'spec.nodeName'];
    }
    case 'configmaps': return [...common('configmaps'), 'data.text=x'];
    case 'services': return [...common('services'), 'spec.type=ClusterIP', 'spec.clusterIP=None', 'spec.type!=ClusterIP'];
    case 'endpointslices': return [...common('endpointslices'), 'addressType=IPv4'];
    case 'namespaces': return [`metadata.name=${anyNs}`, `metadata.name!=${anyNs}`, 'status.phase=Active', 'status.phase!=Active', '', `metadata.namespace=${anyNs}`, 'status.phase'];
    case 'nodes': {
      const n = rng.pick(w.nodes);
      return [`metadata.name=${n}`, `metadata.name!=${n}`, 'spec.unschedulable=true', 'spec.unschedulable!=true', 'spec.unschedulable=false', 'spec.podCIDR=', 'spec.unschedulable'];
    }
  }
}

export interface ReadQuery {
  /** Query parameters of the first request (the continue token is added for later pages). */
  readonly params: ReadonlyArray<readonly [string, string]>;
  /** Spaces in values written as '+'. */
  readonly plus: boolean;
}

/** The parameters of a cacheable read: what clients (informers, kubectl, controllers) send, and their near misses. */
export function readQuery(rng: Rng, w: World, r: Resource, ns: string | undefined, isGet: boolean): ReadQuery {
  const p: Array<[string, string]> = [];
  if (!isGet) {
    if (rng.chance(0.5)) {
      let l = rng.chance(0.9) ? rng.pick(LABELS_VALID) : rng.pick(LABELS_INVALID);
      // Cluster-wide reads mostly stay within this run's objects (other test files may write elsewhere).
      if ((ns === undefined || !NAMESPACED.includes(r)) && rng.chance(0.7)) l = l.trim() === '' ? `kcpfuzz=${w.prefix}` : `kcpfuzz=${w.prefix},${l}`;
      p.push(['labelSelector', l]);
    } else if ((ns === undefined || !NAMESPACED.includes(r)) && rng.chance(0.7)) {
      p.push(['labelSelector', `kcpfuzz=${w.prefix}`]);
    }
    if (rng.chance(0.35)) p.push(['fieldSelector', rng.pick(fieldSelectors(rng, w, r, ns))]);
    if (rng.chance(0.4)) p.push(['limit', rng.chance(0.9) ? String(rng.pick([1, 2, 3, 5, 7, 17, 50, 500])) : rng.pick(['0', '-1', 'abc', '1e3', '99999999999999999999', ''])]);
    if (rng.chance(0.05)) p.push(['continue', rng.pick(['x', '', 'eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJhIn0', 'eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoiIn0=', '%%%'])]);
  }
  const rv = rng.weighted<string | undefined>([[40, undefined], [20, '0'], [15, w.recentRV], [3, '1'], [3, 'abc'], [2, '-1'], [1, '']]);
  if (rv !== undefined) p.push(['resourceVersion', rv]);
  if (rng.chance(0.25)) p.push(['resourceVersionMatch', rng.weighted([[6, 'NotOlderThan'], [3, 'Exact'], [1, 'Bogus'], [1, '']])]);
  if (rng.chance(0.06)) p.push(rng.pick([['watch', 'false'], ['watch', '0'], ['timeoutSeconds', '30'], ['allowWatchBookmarks', 'true'], ['pretty', 'true'], ['foo', 'bar'], ['sendInitialEvents', 'false']] as const).slice() as [string, string]);
  return { params: p, plus: rng.chance(0.3) };
}

export function encodeQuery(q: ReadQuery, continueToken?: string): string {
  const enc = (s: string) => {
    const e = encodeURIComponent(s);
    return q.plus ? e.replaceAll('%20', '+') : e;
  };
  const parts = q.params.filter(([k]) => continueToken === undefined || (k !== 'resourceVersion' && k !== 'resourceVersionMatch' && k !== 'continue')).map(([k, v]) => `${k}=${enc(v)}`);
  if (continueToken !== undefined) parts.push(`continue=${encodeURIComponent(continueToken)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

/** Watch parameters: short timeouts, bookmarks, initial events, resourceVersions new and old. */
export function watchQuery(rng: Rng, w: World): string {
  const p: string[] = [rng.pick(['watch=1', 'watch=true', 'watch=True', 'watch=yes', 'watch=2', 'watch='])];
  p.push(`timeoutSeconds=${rng.pick(['1', '1', '2', '0', '-1', 'x', '1.5'])}`);
  if (rng.chance(0.5)) p.push(`resourceVersion=${rng.pick(['0', w.recentRV, '1', 'abc', '', String(BigInt(w.recentRV) + 1_000_000n)])}`);
  if (rng.chance(0.3)) p.push(`allowWatchBookmarks=${rng.pick(['true', 'false', 'x'])}`);
  if (rng.chance(0.2)) p.push(`sendInitialEvents=${rng.pick(['true', 'false', 'x'])}`);
  if (rng.chance(0.2)) p.push(`resourceVersionMatch=${rng.pick(['NotOlderThan', 'Exact', 'x'])}`);
  if (rng.chance(0.3)) p.push(`labelSelector=${encodeURIComponent(rng.chance(0.8) ? `kcpfuzz=${w.prefix}` : rng.pick(LABELS_INVALID))}`);
  if (rng.chance(0.1)) p.push(`fieldSelector=${encodeURIComponent(rng.pick(['metadata.name=a', 'spec.nodeName=x', 'bogus=1', 'a']))}`);
  return `?${p.join('&')}`;
}

/** A query of any shape: a read's or a watch's, mutated, or made up. */
export function garbageQuery(rng: Rng, w: World, r: Resource): string {
  const base = rng.chance(0.5) ? encodeQuery(readQuery(rng, w, r, undefined, false)) : watchQuery(rng, w);
  switch (rng.int(4)) {
    case 0: return mutate(rng, base);
    case 1: return `${base}&${mutate(rng, base.slice(1))}`;
    case 2: return `?${Array.from({ length: rng.between(1, 40) }, () => `${rng.pick(['limit', 'continue', 'resourceVersion', 'labelSelector', 'fieldSelector', 'watch', 'dryRun', 'x', ''])}=${rng.int(3)}`).join('&')}`;
    default: return rng.pick(['?', '??', '?&&&', '?=', '?a', `?labelSelector=${'a,'.repeat(3000)}a`, `?limit=${'9'.repeat(400)}`, '?%', '?labelSelector=%zz', '?watch', '?resourceVersion=0&resourceVersion=1']);
  }
}
