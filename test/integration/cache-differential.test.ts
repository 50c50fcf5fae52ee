// Differential test of the cache: several hundred generated LISTs (and GETs with resourceVersion=0)
// sent straight to the apiserver and through a caching proxy must get the same answers — same
// status, the same items byte for byte in the same order, the same Status bytes for errors, the same
// body (but for the list's resourceVersion and continue tokens). The metrics must show that most of
// the cacheable reads really came from the cache, and that none of the reads the cache must never
// answer (Exact, Table, protobuf only, invalid input) did.
//
// The reads are generated with a seeded PRNG: KCP_DIFF_SEED=<n> reproduces a run (the object names
// get a fresh prefix each run, of constant length, so that byte order relations are the same).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { proxyReady, sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { mulberry32 } from '../helpers/prng.js';

const cluster = sharedCluster();
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const SEED = Number(process.env['KCP_DIFF_SEED'] ?? '424242');
const RANDOM_READS = Number(process.env['KCP_DIFF_READS'] ?? '450');
const P = `cd${randomBytes(4).toString('hex').slice(0, 6)}`;
const log = (m: string) => process.stderr.write(`[cache-differential] ${m}\n`);

let proxy: TestProxy;

// ------------------------------------------------------------------------------------------------
// Seeded randomness

const rand = mulberry32(SEED);
const chance = (p: number) => rand() < p;
function pick<T>(xs: readonly T[]): T {
  const x = xs[Math.floor(rand() * xs.length)];
  if (x === undefined) throw new Error('pick from an empty list');
  return x;
}

// ------------------------------------------------------------------------------------------------
// The objects: namespaces whose names exercise byte order (`-` < `.` < `/` < `0` < `a`), pods over a
// few nodes, configmaps, services, endpointslices, nodes.

const NAMESPACES = [P, `${P}-a`, `${P}-a-b`, `${P}-ab`, `${P}-a0`, `${P}-b`];
const PODS_PER_NS = [70, 60, 50, 45, 40, 35];
const NODES = [`${P}-n0`, `${P}-n1`, `${P}-n1-a`, `${P}-n1.a`, `${P}-n10`, `${P}-n2`, `${P}-n3`, `${P}-n4`, `${P}-n5`, `${P}-n6`];
const POD_BASES = ['a', 'a-b', 'a.b', 'ab', 'b'];

interface Made {
  readonly ns: string;
  readonly name: string;
}
const made: { pods: Made[]; configmaps: Made[]; services: Made[]; endpointslices: Made[] } = { pods: [], configmaps: [], services: [], endpointslices: [] };

function labels(): Record<string, string> {
  const l: Record<string, string> = { kcpdiff: P };
  if (chance(0.85)) l['app'] = pick(['web', 'db', 'cache']);
  if (chance(0.6)) l['tier'] = pick(['front', 'back', '']);
  if (chance(0.7)) l['version'] = pick(['1', '2', '3', '10', '007', 'v2']);
  if (chance(0.1)) l['example.com/x'] = 'y';
  // Keys an object's prototype has: a label index must not see inherited properties.
  if (chance(0.05)) l['constructor'] = 'x';
  if (chance(0.05)) l['toString'] = '';
  if (chance(0.05)) l['App'] = 'web';
  return l;
}

async function mustCreate(path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await call(cluster, direct(), path, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 201, `POST ${path}: ${r.status} ${r.text()}`);
  return r.json() as Record<string, unknown>;
}

async function pool<T>(items: readonly T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) {
      const t = items[i++] as T;
      await f(t);
    }
  }));
}

interface Planned {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly made?: { readonly list: Made[]; readonly m: Made };
  readonly status?: Record<string, unknown>;
}

/** Everything to create, decided up front so that the seed alone decides the objects. */
function plan(): Planned[][] {
  const waves: Planned[][] = [];
  waves.push(NAMESPACES.map((ns) => ({ path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: labels() } } })));
  waves.push(NODES.map((name) => ({ path: '/api/v1/nodes', body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: labels() }, spec: chance(0.4) ? { unschedulable: true } : {} } })));
  const objects: Planned[] = [];
  let ipN = 1;
  NAMESPACES.forEach((ns, i) => {
    const names = new Set<string>();
    const counters = new Map<string, number>();
    while (names.size < (PODS_PER_NS[i] ?? 0)) {
      const base = pick(POD_BASES);
      const n = (counters.get(base) ?? 0) + 1;
      counters.set(base, n);
      const name = `${base}${pick(['-', '.', ''])}${n}`;
      if (names.has(name)) continue;
      names.add(name);
      const spec: Record<string, unknown> = { containers: [{ name: 'c', image: 'registry.example/demo:1' }] };
      if (chance(0.8)) spec['nodeName'] = pick(NODES);
      spec['restartPolicy'] = pick(['Always', 'OnFailure', 'Never']);
      if (chance(0.25)) spec['schedulerName'] = 'sched-b';
      if (chance(0.5)) spec['serviceAccountName'] = pick(['sa-a', 'sa-b']);
      if (chance(0.15)) spec['hostNetwork'] = true;
      const annotations = chance(0.2) ? { note: 'a <b> & "c" é \u2028' } : undefined;
      const phase = chance(0.45) ? pick(['Running', 'Running', 'Succeeded', 'Failed']) : undefined;
      const ip = `10.1.${Math.floor(ipN / 250)}.${(ipN++ % 250) + 1}`;
      objects.push({
        path: `/api/v1/namespaces/${ns}/pods`,
        body: { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: labels(), ...(annotations ? { annotations } : {}) }, spec },
        made: { list: made.pods, m: { ns, name } },
        ...(phase ? { status: phase === 'Running' ? { phase, podIP: ip, podIPs: [{ ip }] } : { phase } } : {}),
      });
    }
    for (const name of ['a', 'a-b', 'a.b', 'ab', 'b', 'cfg-1', 'cfg-10', 'cfg-2', 'z']) {
      objects.push({
        path: `/api/v1/namespaces/${ns}/configmaps`,
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: labels() }, data: { text: `<${name}> & "${ns}" é`, n: String(Math.floor(rand() * 1000)) } },
        made: { list: made.configmaps, m: { ns, name } },
      });
    }
    if (i < 4) {
      const svcs: Array<[string, Record<string, unknown>]> = [
        ['web', { ports: [{ port: 80 }], selector: { app: 'web' } }],
        ['headless', { clusterIP: 'None', ports: [{ port: 5432 }], selector: { app: 'db' } }],
        ['ext', { type: 'ExternalName', externalName: 'db.example.com' }],
        ...(i === 0 ? [['np', { type: 'NodePort', ports: [{ port: 8080 }] }] as [string, Record<string, unknown>]] : []),
      ];
      for (const [name, spec] of svcs) {
        objects.push({ path: `/api/v1/namespaces/${ns}/services`, body: { apiVersion: 'v1', kind: 'Service', metadata: { name, labels: labels() }, spec }, made: { list: made.services, m: { ns, name } } });
      }
    }
    if (i < 3) {
      for (const name of ['web-abc', 'web-abd']) {
        objects.push({
          path: `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
          body: {
            apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, labels: { ...labels(), 'kubernetes.io/service-name': 'web' } },
            addressType: 'IPv4', endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true } }], ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
          },
          made: { list: made.endpointslices, m: { ns, name } },
        });
      }
    }
  });
  waves.push(objects);
  return waves;
}

async function populate(): Promise<void> {
  const waves = plan();
  // The lists of made objects in planned order (not completion order): the seed decides the reads.
  for (const wave of waves) for (const o of wave) o.made?.list.push(o.made.m);
  for (const wave of waves) {
    await pool(wave, 16, async (o) => {
      await mustCreate(o.path, o.body);
      if (o.status) {
        const name = String((o.body['metadata'] as Record<string, unknown>)['name']);
        const r = await call(cluster, direct(), `${o.path}/${name}/status`, {
          method: 'PATCH', body: JSON.stringify({ status: o.status }), headers: { 'content-type': 'application/merge-patch+json' },
        });
        assert.equal(r.status, 200, `status of ${o.path}/${name}: ${r.text()}`);
      }
    });
  }
}

/** Namespaces made by single tests (not part of the generated reads). */
const extraNamespaces: string[] = [];

async function cleanup(): Promise<void> {
  const del = (path: string) => call(cluster, direct(), path, { method: 'DELETE' }).catch(() => undefined);
  for (const ns of [...NAMESPACES, ...extraNamespaces]) {
    await del(`/api/v1/namespaces/${ns}/pods?gracePeriodSeconds=0`);
    await del(`/api/v1/namespaces/${ns}/configmaps`);
    await del(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`);
  }
  for (const s of made.services) await del(`/api/v1/namespaces/${s.ns}/services/${s.name}`);
  for (const n of NODES) await del(`/api/v1/nodes/${n}`);
  for (const ns of [...NAMESPACES, ...extraNamespaces]) {
    await del(`/api/v1/namespaces/${ns}`);
    // No namespace controller runs in the test cluster: finalize the (now empty) namespace ourselves.
    await call(cluster, direct(), `/api/v1/namespaces/${ns}/finalize`, {
      method: 'PUT', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns }, spec: { finalizers: [] } }),
    }).catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------------------
// Metrics

type Samples = Map<string, number>;

async function scrape(): Promise<Samples> {
  const res = await request(`${proxy.metricsUrl}/metrics`);
  const text = await res.body.text();
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('kube_cache_proxy_cache_served_total') && !line.startsWith('kube_cache_proxy_cache_fallbacks_total') && !line.startsWith('kube_cache_proxy_requests_total')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

function labelOf(series: string, label: string): string | undefined {
  const m = new RegExp(`[{,]${label}="((?:[^"\\\\]|\\\\.)*)"`).exec(series);
  return m?.[1];
}

function delta(after: Samples, before: Samples, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    if (!k.startsWith(`${name}{`)) continue;
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/**
 * Runs `read` until the proxy answered it from the cache: a consistent read is forwarded when the
 * cache cannot prove its freshness within the budget (rv_wait_timeout), which a busy shared cluster
 * can cause; any other reason to forward fails.
 */
/** Freshness forwards (a consistent read the cache could not prove fresh at once) tried again, counted. */
let freshnessRetries = 0;
const FRESHNESS_REASONS = new Set(['rv_wait_timeout', 'quiet', 'foreign_continue']);

async function fromCache<T>(read: () => Promise<T>, what: string, resource: Resource = 'pods'): Promise<T> {
  let reasons: Array<string | undefined> = [];
  for (let i = 0; i < 5; i++) {
    await caughtUp(resource);
    const before = await scrape();
    const out = await read();
    const after = await scrape();
    if (total(delta(after, before, 'kube_cache_proxy_cache_served_total')) >= 1) return out;
    reasons = [...delta(after, before, 'kube_cache_proxy_cache_fallbacks_total').keys()].map((k) => labelOf(k, 'reason'));
    if (!reasons.every((r) => r !== undefined && FRESHNESS_REASONS.has(r))) break;
    freshnessRetries++;
  }
  assert.fail(`${what}: not served from the cache (${reasons.join(', ')})`);
}

/**
 * A quiet cluster as the cache sees it: waits until the proxy's cache of `resource` holds the
 * apiserver's current resourceVersion. Without it a consistent read arriving after a write to any
 * other resource (the apiserver's own lease, every 10 s) finds the cache behind, and a quiet
 * resource's read is then forwarded rather than made to wait for its next bookmark.
 */
async function caughtUp(resource: Resource): Promise<void> {
  const group = resource === 'endpointslices' ? 'discovery.k8s.io' : '';
  const collection = group ? `/apis/${group}/v1/${resource}` : `/api/v1/${resource}`;
  const r = await call(cluster, direct(), `${collection}?limit=1`);
  const rv = BigInt(listMeta(r.body).resourceVersion ?? '0');
  const cr = proxy.proxy.cache?.lookup(group, 'v1', resource);
  assert.ok(cr, `${resource} is cached`);
  const deadline = Date.now() + 10_000;
  while (cr.reflector.resourceVersion < rv) {
    if (Date.now() > deadline) assert.fail(`the cache of ${resource} did not reach ${rv} within 10 s (at ${cr.reflector.resourceVersion})`);
    await new Promise((res) => setTimeout(res, 20));
  }
}


// ------------------------------------------------------------------------------------------------
// JSON bytes: the items of a list body, and the body with its list metadata normalised.

function skipWs(b: Buffer, i: number): number {
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return i;
}
function skipJson(b: Buffer, i: number): number {
  const c = b[i];
  if (c === 0x22) {
    i++;
    while (i < b.length && b[i] !== 0x22) i += b[i] === 0x5c ? 2 : 1;
    return i + 1;
  }
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    while (i < b.length) {
      const d = b[i];
      if (d === 0x22) {
        i = skipJson(b, i);
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    throw new Error('unterminated JSON');
  }
  while (i < b.length && ![0x2c, 0x7d, 0x5d, 0x20, 0x0a, 0x0d, 0x09].includes(b[i] ?? 0)) i++;
  return i;
}
/** Top-level members of a JSON object: name → [start, end) of the value. */
function members(b: Buffer): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  let i = skipWs(b, 0);
  if (b[i] !== 0x7b) throw new Error(`not a JSON object: ${b.toString('utf8', 0, 80)}`);
  i = skipWs(b, i + 1);
  while (i < b.length && b[i] !== 0x7d) {
    const ks = i;
    i = skipJson(b, i);
    const key = JSON.parse(b.toString('utf8', ks, i)) as string;
    i = skipWs(b, i);
    i = skipWs(b, i + 1); // colon
    const vs = i;
    i = skipJson(b, i);
    out.set(key, [vs, i]);
    i = skipWs(b, i);
    if (b[i] === 0x2c) i = skipWs(b, i + 1);
  }
  return out;
}
/** The raw bytes of each element of the top-level "items" array. */
function itemBytes(b: Buffer): Buffer[] {
  const r = members(b).get('items');
  if (!r) throw new Error('no items');
  const arr = b.subarray(r[0], r[1]);
  if (arr.toString() === 'null') return [];
  const out: Buffer[] = [];
  let i = skipWs(arr, 1);
  while (i < arr.length && arr[i] !== 0x5d) {
    const s = i;
    i = skipJson(arr, i);
    out.push(arr.subarray(s, i));
    i = skipWs(arr, i);
    if (arr[i] === 0x2c) i = skipWs(arr, i + 1);
  }
  return out;
}
interface ListMeta {
  readonly resourceVersion?: string;
  readonly continue?: string;
  readonly remainingItemCount?: number;
}
function listMeta(b: Buffer): ListMeta {
  const r = members(b).get('metadata');
  return r ? (JSON.parse(b.toString('utf8', r[0], r[1])) as ListMeta) : {};
}
/** The body with the list's resourceVersion and continue token values replaced by placeholders. */
function normalized(b: Buffer): string {
  const r = members(b).get('metadata');
  if (!r) return b.toString('utf8');
  const m = JSON.parse(b.toString('utf8', r[0], r[1])) as Record<string, unknown>;
  if ('resourceVersion' in m) m['resourceVersion'] = 'RV';
  if ('continue' in m) m['continue'] = 'CONTINUE';
  return b.toString('utf8', 0, r[0]) + JSON.stringify(m) + b.toString('utf8', r[1]);
}
/** The body without its list's continue token (what it would be had it been the last page). */
function withoutContinue(b: Buffer): Buffer {
  const r = members(b).get('metadata');
  if (!r) return b;
  const m = JSON.parse(b.toString('utf8', r[0], r[1])) as Record<string, unknown>;
  delete m['continue'];
  return Buffer.concat([b.subarray(0, r[0]), Buffer.from(JSON.stringify(m)), b.subarray(r[1])]);
}
let trailingEmptyPages = 0;
const itemName = (item: Buffer): string => {
  const m = /"metadata":\{"name":"([^"]*)"(?:,"generateName":"[^"]*")?(?:,"namespace":"([^"]*)")?/.exec(item.toString('utf8', 0, 400));
  return m ? `${m[2] ? `${m[2]}/` : ''}${m[1]}` : item.toString('utf8', 0, 80);
};

// ------------------------------------------------------------------------------------------------
// The reads

type Resource = 'pods' | 'configmaps' | 'services' | 'endpointslices' | 'namespaces' | 'nodes';
const NAMESPACED: readonly Resource[] = ['pods', 'configmaps', 'services', 'endpointslices'];
const RESOURCES: readonly Resource[] = ['pods', 'pods', 'pods', 'configmaps', 'services', 'endpointslices', 'namespaces', 'nodes'];

function collection(r: Resource, ns: string | undefined): string {
  const prefix = r === 'endpointslices' ? '/apis/discovery.k8s.io/v1' : '/api/v1';
  return ns === undefined ? `${prefix}/${r}` : `${prefix}/namespaces/${ns}/${r}`;
}

type AcceptKind = 'none' | 'json' | 'star' | 'protojson' | 'table' | 'pretty' | 'proto';
const ACCEPT: Readonly<Record<AcceptKind, string | undefined>> = {
  none: undefined,
  json: 'application/json',
  star: '*/*',
  protojson: 'application/vnd.kubernetes.protobuf,application/json',
  table: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json',
  pretty: 'application/json;pretty=1',
  proto: 'application/vnd.kubernetes.protobuf',
};

type RvKind = 'unset' | 'zero' | 'notOlderThan' | 'legacyNotOlderThan' | 'exact' | 'legacyExact' | 'invalid';

interface ReadCase {
  readonly id: string;
  readonly resource: Resource;
  readonly namespace: string | undefined;
  readonly labelSelector: string | undefined;
  readonly fieldSelector: string | undefined;
  readonly limit: number | undefined;
  readonly rv: RvKind;
  /** The query string parameters for resourceVersion/resourceVersionMatch (first page only). */
  readonly rvParams: string;
  readonly accept: AcceptKind;
  /** Encode spaces in selectors as '+' (Go's query parsing reads them as spaces). */
  readonly plus: boolean;
  /** Other query parameters, on every page. */
  readonly extra: string | undefined;
  /** Per docs/design.md ("Which reads are answered from the cache"): the cache answers it, never answers it, or either is right. */
  readonly expect: 'cache' | 'forward' | 'either';
  readonly cacheable: boolean;
}

interface SelectorChoice {
  readonly s: string;
  /** valid: parses and is supported; unsupported: a field the apiserver (or only the proxy) does not support; invalid: a parse error. */
  readonly kind: 'valid' | 'unsupported' | 'invalid';
}

const V = (s: string): SelectorChoice => ({ s, kind: 'valid' });
const U = (s: string): SelectorChoice => ({ s, kind: 'unsupported' });
const I = (s: string): SelectorChoice => ({ s, kind: 'invalid' });

const LABELS_VALID = [
  '', 'app=web', 'app==db', 'app!=cache', 'app in (web,db)', 'app notin (web)', 'app notin (web,cache)', 'tier', '!tier', 'tier=',
  'tier==', 'tier in ()', 'tier notin ()', 'tier in (front,)', 'version>2', 'version<10', 'version>0,version<3', 'version in (1,007)',
  'version=007', 'version>6', 'version<8', 'version>9', 'app=web,tier=front', 'app in (web,cache),!version', 'app,tier!=back,version>1',
  'app=web, tier in (front, back)', ` kcpdiff = ${P} `, `kcpdiff=${P},app=db`, `kcpdiff in (${P}),version notin (1,2)`, '!kcpdiff',
  'example.com/x', 'example.com/x=y,app', '!example.com/x,app notin ()', 'app=web,app=db', 'app=web,app in (web,db)', 'version>1,version<3,tier,!example.com/x',
  'nosuchlabel', '!nosuchlabel', 'nosuchlabel!=x', 'nosuchlabel>1', 'constructor', '!constructor', 'constructor=x', 'constructor!=x', 'toString',
  'toString=', 'hasOwnProperty', '!hasOwnProperty', 'valueOf in (x)', 'App=web', 'App', '!App,app=web',
].map(V);
const LABELS_INVALID = [
  'app in web', 'version>abc', 'version>-1', 'app=web,', ',app', '!app=web', 'a b', 'app in (web', 'Äpp=1', `app=${'x'.repeat(64)}`, 'app!', '=web',
  'app in (a b)', 'app notin', 'version<', 'app=(x)', 'example.com/=x', '-app=x', '__proto__', '!__proto__',
].map(I);

function fieldChoices(r: Resource, ns: string | undefined): SelectorChoice[] {
  const anyNs = ns ?? pick(NAMESPACES);
  const sample = (list: Made[]) => pick(list.filter((m) => m.ns === anyNs).length > 0 ? list.filter((m) => m.ns === anyNs) : list);
  const common = (list: Made[]): SelectorChoice[] => {
    const m = sample(list);
    return [
      V(`metadata.name=${m.name}`), V(`metadata.name==${m.name}`), V(`metadata.name!=${m.name}`), V(`metadata.namespace=${m.ns}`),
      V(`metadata.namespace!=${m.ns}`), V(`metadata.name=${m.name},metadata.namespace=${m.ns}`), V('metadata.name=no-such'), V('metadata.name=a\\,b'),
      V(''), V(','), U('metadata.uid=x'), I('metadata.name'), I('metadata.name=a=b'), I('metadata.name=a\\x'),
    ];
  };
  switch (r) {
    case 'pods': {
      const n0 = pick(NODES);
      const n1 = pick(NODES);
      const p = sample(made.pods);
      return [
        ...common(made.pods),
        V(`spec.nodeName=${n0}`), V(`spec.nodeName==${n1}`), V(`spec.nodeName!=${n0}`), V('spec.nodeName='), V('spec.nodeName!='),
        V('status.phase=Running'), V('status.phase=Pending'), V('status.phase!=Pending'), V('status.phase=Succeeded'), V('status.phase==Failed'),
        V('spec.restartPolicy=Never'), V('spec.restartPolicy!=Always'), V('spec.schedulerName=sched-b'), V('spec.schedulerName=default-scheduler'),
        V('spec.serviceAccountName=sa-a'), V('spec.serviceAccountName='), V('spec.hostNetwork=true'), V('spec.hostNetwork=false'), V('spec.hostNetwork!=false'),
        V('status.podIP=10.1.0.7'), V('status.podIP!='), V('status.nominatedNodeName='), V(`spec.nodeName=${n0},status.phase=Running`),
        V(`spec.nodeName=${n1},metadata.namespace=${p.ns}`), V(`spec.nodeName!=${n0},spec.nodeName!=${n1},spec.nodeName!=`), V(`metadata.name=${p.name},spec.nodeName=${n0}`),
        U('spec.foo=bar'), U('status.podIPs='), U(`spec.host=${n0}`), I('spec.nodeName'),
      ];
    }
    case 'configmaps':
      return [...common(made.configmaps), U('data.text=x')];
    case 'services':
      return [...common(made.services), V('spec.type=ClusterIP'), V('spec.type!=ClusterIP'), V('spec.clusterIP=None'), V('spec.type=ExternalName'), V('spec.clusterIP!=None,spec.type=ClusterIP'), U('spec.ports=x')];
    case 'endpointslices':
      return [...common(made.endpointslices), U('addressType=IPv4')];
    case 'namespaces':
      return [V(`metadata.name=${anyNs}`), V(`metadata.name!=${anyNs}`), V('status.phase=Active'), V('status.phase!=Active'), V(''), U(`name=${anyNs}`), U(`metadata.namespace=${anyNs}`), I('status.phase')];
    case 'nodes': {
      const n = pick(NODES);
      return [V(`metadata.name=${n}`), V(`metadata.name!=${n}`), V('spec.unschedulable=true'), V('spec.unschedulable!=true'), V('spec.unschedulable=false'), V(`spec.unschedulable=false,metadata.name=${n}`), U('metadata.namespace=x'), U('spec.podCIDR='), I('spec.unschedulable')];
    }
  }
}

/** LIST parameters the cache answers as the apiserver does (they change nothing for a list). */
const HARMLESS_EXTRAS = ['watch=false', 'watch=0', 'timeoutSeconds=30', 'allowWatchBookmarks=true', 'watch=false&timeoutSeconds=5'];
/** Parameters that are forwarded: the apiserver writes the answer (pretty output, 422s, 400s). */
const OTHER_EXTRAS = ['pretty=true', 'pretty=false', 'sendInitialEvents=false', 'foo=bar', 'limit=-1', 'timeoutSeconds=abc', 'labelSelector=app%3Dweb'];
/** Of those, the ones docs/design.md ("Which reads are answered from the cache") says are never answered from the cache. */
const NEVER_EXTRAS = ['pretty=true', 'pretty=false', 'foo=bar'];
let recentRV = '0';
const invalidRvParams = () => [
  'resourceVersion=abc', 'resourceVersionMatch=NotOlderThan', `resourceVersion=${recentRV}&resourceVersionMatch=Bogus`, 'resourceVersion=-5',
  'resourceVersion=0&resourceVersionMatch=Exact', 'resourceVersionMatch=Exact', 'resourceVersion=1&resourceVersionMatch=NotOlderThan&continue=x',
];
let caseCounter = 0;

function makeCase(o: {
  resource: Resource; namespace: string | undefined; label: SelectorChoice | undefined; field: SelectorChoice | undefined;
  limit: number | undefined; rv: RvKind; accept: AcceptKind; plus: boolean; rvParams?: string; extra?: string;
}): ReadCase {
  let rvParams = '';
  let limit = o.limit;
  switch (o.rv) {
    case 'unset':
      break;
    case 'zero':
      rvParams = pick(['resourceVersion=0', 'resourceVersion=0&resourceVersionMatch=NotOlderThan']);
      break;
    case 'notOlderThan':
      rvParams = `resourceVersion=${recentRV}&resourceVersionMatch=NotOlderThan`;
      break;
    case 'legacyNotOlderThan':
      rvParams = `resourceVersion=${recentRV}`;
      limit = undefined;
      break;
    case 'exact':
      rvParams = `resourceVersion=${recentRV}&resourceVersionMatch=Exact`;
      break;
    case 'legacyExact':
      rvParams = `resourceVersion=${recentRV}`;
      limit = limit ?? pick([5, 50, 500]);
      break;
    case 'invalid':
      rvParams = pick(invalidRvParams());
      break;
  }
  if (o.rvParams !== undefined) rvParams = o.rvParams;
  const jsonAccept = o.accept === 'none' || o.accept === 'json' || o.accept === 'star' || o.accept === 'protojson';
  const goodSelectors = (o.label === undefined || o.label.kind === 'valid') && (o.field === undefined || o.field.kind === 'valid');
  const servable = o.rv === 'unset' || o.rv === 'zero' || o.rv === 'notOlderThan' || o.rv === 'legacyNotOlderThan';
  const never = !jsonAccept || !goodSelectors || !servable || (o.extra !== undefined && NEVER_EXTRAS.includes(o.extra));
  const expect = never ? 'forward' : o.extra === undefined || HARMLESS_EXTRAS.includes(o.extra) ? 'cache' : 'either';
  return {
    id: `#${caseCounter++}`, resource: o.resource, namespace: o.namespace, labelSelector: o.label?.s, fieldSelector: o.field?.s,
    limit, rv: o.rv, rvParams, accept: o.accept, plus: o.plus, extra: o.extra, expect, cacheable: expect === 'cache',
  };
}

function randomCase(): ReadCase {
  const resource = pick(RESOURCES);
  const namespaced = NAMESPACED.includes(resource);
  const namespace = namespaced && chance(0.65) ? pick(NAMESPACES) : undefined;
  let label: SelectorChoice | undefined;
  if (chance(0.6)) label = chance(0.92) ? pick(LABELS_VALID) : pick(LABELS_INVALID);
  // Cluster-wide reads mostly stay within this test's objects (other test files write concurrently).
  if (namespace === undefined && chance(0.6) && (label === undefined || label.kind === 'valid')) {
    label = V(label === undefined || label.s.trim() === '' ? `kcpdiff=${P}` : `kcpdiff=${P},${label.s}`);
  }
  let field: SelectorChoice | undefined;
  if (chance(0.45)) {
    const choices = fieldChoices(resource, namespace);
    field = chance(0.85) ? pick(choices.filter((c) => c.kind === 'valid')) : pick(choices.filter((c) => c.kind !== 'valid'));
  }
  let limit: number | undefined;
  if (chance(0.35)) limit = namespace === undefined ? pick([25, 60, 150, 500]) : resource === 'pods' ? pick([3, 5, 10, 50, 500]) : pick([1, 2, 3, 5, 500]);
  const r = rand();
  const rv: RvKind = r < 0.45 ? 'unset' : r < 0.62 ? 'zero' : r < 0.72 ? 'notOlderThan' : r < 0.78 ? 'legacyNotOlderThan' : r < 0.86 ? 'exact' : r < 0.92 ? 'legacyExact' : 'invalid';
  const a = rand();
  const accept: AcceptKind = a < 0.27 ? 'none' : a < 0.55 ? 'json' : a < 0.7 ? 'star' : a < 0.84 ? 'protojson' : a < 0.94 ? 'table' : a < 0.97 ? 'pretty' : 'proto';
  const extra = chance(0.1) ? (chance(0.6) ? pick(HARMLESS_EXTRAS) : pick(OTHER_EXTRAS)) : undefined;
  return makeCase({ resource, namespace, label, field, limit, rv, accept, plus: chance(0.3), ...(extra === undefined ? {} : { extra }) });
}

/** Every selector of the catalogues at least once, on a namespaced and a cluster-wide read. */
function coverageCases(): ReadCase[] {
  const out: ReadCase[] = [];
  for (const label of [...LABELS_VALID, ...LABELS_INVALID]) {
    out.push(makeCase({ resource: 'pods', namespace: pick(NAMESPACES), label, field: undefined, limit: undefined, rv: 'unset', accept: 'json', plus: false }));
  }
  for (const label of LABELS_VALID) {
    const resource = pick(['nodes', 'namespaces', 'configmaps', 'services'] as const);
    out.push(makeCase({ resource, namespace: undefined, label: V(`kcpdiff=${P}${label.s.trim() ? `,${label.s}` : ''}`), field: undefined, limit: undefined, rv: 'unset', accept: 'none', plus: chance(0.5) }));
  }
  for (const resource of ['pods', 'configmaps', 'services', 'endpointslices', 'namespaces', 'nodes'] as const) {
    const namespaced = NAMESPACED.includes(resource);
    for (const field of fieldChoices(resource, undefined)) {
      out.push(makeCase({ resource, namespace: undefined, label: undefined, field, limit: undefined, rv: 'unset', accept: 'json', plus: false }));
      if (namespaced) out.push(makeCase({ resource, namespace: pick(NAMESPACES), label: undefined, field, limit: undefined, rv: 'zero', accept: 'none', plus: false }));
    }
  }
  // Every Accept variant with every resourceVersion mode, and every invalid resourceVersion.
  for (const accept of Object.keys(ACCEPT) as AcceptKind[]) {
    for (const rv of ['unset', 'zero', 'notOlderThan', 'legacyNotOlderThan', 'exact', 'legacyExact', 'invalid'] as const) {
      out.push(makeCase({ resource: 'pods', namespace: NAMESPACES[2], label: V('app'), field: undefined, limit: rv === 'legacyExact' || rv === 'notOlderThan' ? 7 : undefined, rv, accept, plus: false }));
    }
  }
  for (const rvParams of invalidRvParams()) {
    out.push(makeCase({ resource: 'configmaps', namespace: NAMESPACES[0], label: undefined, field: undefined, limit: undefined, rv: 'invalid', accept: 'json', plus: false, rvParams }));
  }
  for (const extra of [...HARMLESS_EXTRAS, ...OTHER_EXTRAS]) {
    out.push(makeCase({ resource: 'configmaps', namespace: NAMESPACES[1], label: V('app'), field: undefined, limit: 3, rv: 'unset', accept: 'json', plus: false, extra }));
  }
  // Paging over every resource, with and without selectors.
  for (const resource of ['pods', 'configmaps', 'services', 'endpointslices', 'namespaces', 'nodes'] as const) {
    const namespace = NAMESPACED.includes(resource) ? NAMESPACES[0] : undefined;
    for (const limit of [1, 4]) {
      if (resource === 'pods' && limit === 1) continue;
      out.push(makeCase({ resource, namespace, label: namespace ? undefined : V(`kcpdiff=${P}`), field: undefined, limit, rv: 'unset', accept: 'json', plus: false }));
      out.push(makeCase({ resource, namespace, label: V(namespace ? 'app' : `kcpdiff=${P},app`), field: undefined, limit, rv: 'notOlderThan', accept: 'none', plus: false }));
    }
  }
  return out;
}

function queryFor(c: ReadCase, page: { continueToken: string } | undefined): string {
  const enc = (s: string) => {
    const e = encodeURIComponent(s);
    return c.plus ? e.replaceAll('%20', '+') : e;
  };
  const q: string[] = [];
  if (c.labelSelector !== undefined) q.push(`labelSelector=${enc(c.labelSelector)}`);
  if (c.fieldSelector !== undefined) q.push(`fieldSelector=${enc(c.fieldSelector)}`);
  if (c.limit !== undefined) q.push(`limit=${c.limit}`);
  if (page) q.push(`continue=${encodeURIComponent(page.continueToken)}`);
  else if (c.rvParams) q.push(c.rvParams);
  if (c.extra !== undefined) q.push(c.extra);
  return q.length > 0 ? `?${q.join('&')}` : '';
}

const describe = (c: ReadCase) =>
  `${c.id} (seed ${SEED}) GET ${collection(c.resource, c.namespace)}${queryFor(c, undefined)} Accept: ${ACCEPT[c.accept] ?? '(none)'}`;

interface Fetched {
  readonly pages: Reply[];
}

async function fetchAll(base: string, c: ReadCase, accept: string | undefined): Promise<Fetched> {
  const headers: Record<string, string> = accept === undefined ? {} : { accept };
  const pages: Reply[] = [];
  let page: { continueToken: string } | undefined;
  for (let n = 0; n < 400; n++) {
    const r = await call(cluster, base, `${collection(c.resource, c.namespace)}${queryFor(c, page)}`, { headers });
    pages.push(r);
    if (r.status !== 200 || !String(r.headers['content-type'] ?? '').startsWith('application/json')) break;
    const cont = listMeta(r.body).continue;
    if (!cont) break;
    page = { continueToken: cont };
  }
  return { pages };
}

/** undefined when the proxy's answer is equivalent to the apiserver's, else what differs. */
function difference(c: ReadCase, d: Fetched, p: Fetched): string | undefined {
  const d0 = d.pages[0];
  const p0 = p.pages[0];
  if (!d0 || !p0) return 'no answer';
  if (d0.status !== p0.status) return `status: direct ${d0.status} ${d0.text().slice(0, 300)} / proxied ${p0.status} ${p0.text().slice(0, 300)}`;
  const dct = String(d0.headers['content-type']);
  const pct = String(p0.headers['content-type']);
  if (dct !== pct) return `content-type: direct ${dct} / proxied ${pct}`;
  if (d0.status !== 200) {
    if (!d0.body.equals(p0.body)) return `error body: direct ${d0.text()} / proxied ${p0.text()}`;
    return undefined;
  }
  if (!dct.startsWith('application/json')) {
    // Protobuf (forwarded): the bytes carry the list's resourceVersion; same status and type suffice.
    return undefined;
  }
  if (c.accept === 'table') return tableDifference(d, p);
  if (c.accept === 'pretty' || c.extra === 'pretty=true') {
    const norm = (b: Buffer) => b.toString('utf8').replace(/^( {4}"resourceVersion": )"\d+"/m, '$1"RV"').replace(/^( {4}"continue": )"[^"]*"/m, '$1"C"');
    if (d.pages.length !== p.pages.length) return `pretty pages: direct ${d.pages.length} / proxied ${p.pages.length}`;
    for (let i = 0; i < d.pages.length; i++) {
      if (norm(d.pages[i]?.body ?? Buffer.alloc(0)) !== norm(p.pages[i]?.body ?? Buffer.alloc(0))) return `pretty page ${i} differs`;
    }
    return undefined;
  }
  const di = d.pages.flatMap((r) => itemBytes(r.body));
  const pi = p.pages.flatMap((r) => itemBytes(r.body));
  for (let i = 0; i < Math.max(di.length, pi.length); i++) {
    const a = di[i];
    const b = pi[i];
    if (!a || !b || !a.equals(b)) {
      return `items differ at ${i} (direct ${di.length} items, proxied ${pi.length}): direct ${a ? itemName(a) : '-'} / proxied ${b ? itemName(b) : '-'}` +
        (a && b && itemName(a) === itemName(b) ? `\n direct: ${a.toString()}\nproxied: ${b.toString()}` : '');
    }
  }
  // The whole bodies, page by page, but for resourceVersion and continue tokens. With a selector the
  // apiserver's cacher says "more" while unscanned candidates remain after the page's last match
  // (cacher.go: hasMoreListItems = i < len(resp.Items)-1), so its last page may be empty; the
  // proxy's snapshot holds only matches and ends a page earlier. Same items, one round trip less.
  let dPages = d.pages.map((r) => r.body);
  const selective = (c.labelSelector ?? '').trim() !== '' || (c.fieldSelector ?? '').replaceAll(',', '') !== '';
  if (selective && dPages.length === p.pages.length + 1 && itemBytes(dPages[dPages.length - 1] ?? Buffer.alloc(0)).length === 0) {
    dPages = dPages.slice(0, -1);
    const lastBody = dPages[dPages.length - 1];
    if (lastBody) dPages[dPages.length - 1] = withoutContinue(lastBody);
    trailingEmptyPages++;
  }
  if (dPages.length !== p.pages.length) return `pages: direct ${d.pages.length} / proxied ${p.pages.length}`;
  for (let i = 0; i < dPages.length; i++) {
    const a = normalized(dPages[i] ?? Buffer.alloc(0));
    const b = normalized(p.pages[i]?.body ?? Buffer.alloc(0));
    if (a !== b) return `page ${i} body: direct ${a.slice(0, 400)} / proxied ${b.slice(0, 400)}`;
    const ds = d.pages[i]?.status;
    const ps = p.pages[i]?.status;
    if (ds !== ps) return `page ${i} status: direct ${ds} / proxied ${ps}`;
  }
  return undefined;
}

function tableDifference(d: Fetched, p: Fetched): string | undefined {
  const shape = (f: Fetched) => f.pages.map((r) => {
    const t = r.json() as { kind?: string; columnDefinitions?: Array<{ name: string }>; rows?: Array<{ cells: unknown[]; object: unknown }> };
    const age = (t.columnDefinitions ?? []).findIndex((col) => col.name === 'Age');
    return JSON.stringify({
      kind: t.kind, columns: t.columnDefinitions,
      rows: (t.rows ?? []).map((row) => ({ cells: row.cells.filter((_, i) => i !== age), object: row.object })),
    });
  });
  const a = shape(d);
  const b = shape(p);
  if (a.length !== b.length) return `table pages: direct ${a.length} / proxied ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `table page ${i}: direct ${a[i]?.slice(0, 300)} / proxied ${b[i]?.slice(0, 300)}`;
  return undefined;
}

interface Outcome {
  readonly c: ReadCase;
  readonly served: number;
  readonly fallbacks: Map<string, number>;
  readonly attempts: number;
  readonly status: number;
  readonly items: number;
  readonly pages: number;
}

/**
 * Direct, proxied, and direct again: the proxy's answer must equal one of the two direct answers
 * (other test files change cluster-wide collections concurrently). Retried a few times.
 */
/** Cases tried again because the apiserver's answer changed between the direct and the proxied read. */
let differenceRetries = 0;

async function runCase(c: ReadCase): Promise<Outcome> {
  let last = '';
  for (let attempt = 1; attempt <= 6; attempt++) {
    // Protobuf-or-JSON clients: a JSON answer from the cache is as good as the apiserver's protobuf;
    // it is compared with the apiserver's JSON answer.
    const d1 = await fetchAll(direct(), c, ACCEPT[c.accept]);
    if (c.cacheable) await caughtUp(c.resource);
    const before = await scrape();
    const p = await fetchAll(proxy.url, c, ACCEPT[c.accept]);
    const after = await scrape();
    const served = total(delta(after, before, 'kube_cache_proxy_cache_served_total'));
    const fallbacks = new Map<string, number>();
    for (const [k, v] of delta(after, before, 'kube_cache_proxy_cache_fallbacks_total')) {
      const reason = labelOf(k, 'reason') ?? '?';
      fallbacks.set(reason, (fallbacks.get(reason) ?? 0) + v);
    }
    const outcome = (): Outcome => {
      const p0 = p.pages[0];
      const json = p0 !== undefined && p0.status === 200 && String(p0.headers['content-type']).startsWith('application/json') && c.accept !== 'table';
      return { c, served, fallbacks, attempts: attempt, status: p0?.status ?? 0, items: json ? p.pages.reduce((n, r) => n + itemBytes(r.body).length, 0) : -1, pages: p.pages.length };
    };
    if (c.cacheable && served === 0 && attempt < 6 && fallbacks.size > 0 && [...fallbacks.keys()].every((r) => FRESHNESS_REASONS.has(r))) {
      // The cluster moved between the catch-up and the read: tried again, counted.
      freshnessRetries++;
      last = `forwarded for freshness (${[...fallbacks.keys()].join(', ')})`;
      continue;
    }
    const p0ct = String(p.pages[0]?.headers['content-type'] ?? '');
    const d1ct = String(d1.pages[0]?.headers['content-type'] ?? '');
    let d1cmp = d1;
    if (c.accept === 'protojson' && p0ct.startsWith('application/json') && !d1ct.startsWith('application/json')) {
      assert.equal(d1.pages[0]?.status, p.pages[0]?.status, `${describe(c)}: status`);
      d1cmp = await fetchAll(direct(), c, 'application/json');
    }
    const diff1 = difference(c, d1cmp, p);
    if (diff1 === undefined) return outcome();
    const d2 = await fetchAll(direct(), c, c.accept === 'protojson' && p0ct.startsWith('application/json') ? 'application/json' : ACCEPT[c.accept]);
    const diff2 = difference(c, d2, p);
    if (diff2 === undefined) return outcome();
    // Equal direct answers make a real difference likely, but an object created and deleted by
    // another test file between them is a legitimate difference for a consistent read: a real one
    // persists through every attempt.
    last = `${diff2}${difference(c, d1cmp, d2) === undefined ? '' : ' (the apiserver\'s answer changed meanwhile)'}`;
    differenceRetries++;
    await new Promise((r) => setTimeout(r, 300 * attempt));
  }
  assert.fail(`${describe(c)}\n${last}`);
}

// ------------------------------------------------------------------------------------------------

before(async () => {
  const t0 = Date.now();
  proxy = await startTestProxy(cluster, { cache: cacheConfigFrom({}) });
  await populate();
  log(`prefix ${P}, seed ${SEED}: ${NAMESPACES.length} namespaces, ${made.pods.length} pods, ${made.configmaps.length} configmaps, ${made.services.length} services, ${made.endpointslices.length} endpointslices, ${NODES.length} nodes in ${Date.now() - t0} ms`);
  await proxyReady(proxy, 120_000);
  log(`proxy ready after ${Date.now() - t0} ms`);
});

after(async () => {
  await proxy.stop();
  await cleanup();
  await closeAgents();
});

async function refreshRV(): Promise<void> {
  const r = await call(cluster, direct(), `/api/v1/namespaces/${P}/pods?limit=1`);
  recentRV = listMeta(r.body).resourceVersion ?? '0';
}

/** Changes after the first half of the reads: deletions, label and field changes on every kind. */
async function mutate(): Promise<string> {
  const patch = async (path: string, body: unknown) => {
    const r = await call(cluster, direct(), path, { method: 'PATCH', body: JSON.stringify(body), headers: { 'content-type': 'application/merge-patch+json' } });
    assert.equal(r.status, 200, `PATCH ${path}: ${r.text()}`);
  };
  const relabel = () => ({ metadata: { labels: { app: chance(0.3) ? null : pick(['web', 'db', 'cache', 'new']), tier: chance(0.5) ? null : pick(['front', 'back', '']), version: pick(['1', '5', '11', null]) } } });
  const work: Array<() => Promise<void>> = [];
  const doomed = new Set<Made>();
  for (let i = 0; i < 25; i++) doomed.add(pick(made.pods));
  for (const m of doomed) work.push(async () => {
    const r = await call(cluster, direct(), `/api/v1/namespaces/${m.ns}/pods/${m.name}?gracePeriodSeconds=0`, { method: 'DELETE' });
    assert.equal(r.status, 200, r.text());
  });
  const live = made.pods.filter((m) => !doomed.has(m));
  for (let i = 0; i < 40; i++) {
    const m = pick(live);
    const body = relabel();
    work.push(() => patch(`/api/v1/namespaces/${m.ns}/pods/${m.name}`, body));
  }
  for (let i = 0; i < 25; i++) {
    const m = pick(live);
    const phase = pick(['Running', 'Succeeded', 'Failed']);
    work.push(() => patch(`/api/v1/namespaces/${m.ns}/pods/${m.name}/status`, { status: { phase } }));
  }
  for (let i = 0; i < 12; i++) {
    const m = pick(made.configmaps);
    const body = { ...relabel(), data: { changed: `${i}` } };
    work.push(() => patch(`/api/v1/namespaces/${m.ns}/configmaps/${m.name}`, body));
  }
  for (const n of NODES.slice(0, 5)) {
    const body = { ...relabel(), spec: { unschedulable: chance(0.5) } };
    work.push(() => patch(`/api/v1/nodes/${n}`, body));
  }
  for (const ns of NAMESPACES.slice(0, 3)) {
    const body = relabel();
    work.push(() => patch(`/api/v1/namespaces/${ns}`, body));
  }
  for (const m of made.services.slice(0, 4)) {
    const body = relabel();
    work.push(() => patch(`/api/v1/namespaces/${m.ns}/services/${m.name}`, body));
  }
  await pool(work, 8, (f) => f());
  made.pods = live;
  return `${doomed.size} pods deleted, ${work.length - doomed.size} objects changed`;
}

test('generated LISTs: the same answers directly and through the cache, and most from the cache', { timeout: 20 * 60_000 }, async () => {
  await refreshRV();
  const cases = coverageCases();
  const coverage = cases.length;
  for (let i = 0; i < RANDOM_READS / 2; i++) cases.push(randomCase());
  const t0 = Date.now();
  const outcomes: Outcome[] = [];
  for (const c of cases) outcomes.push(await runCase(c));
  log(`after ${outcomes.length} reads: ${await mutate()}`);
  await refreshRV();
  for (let i = 0; i < RANDOM_READS / 2; i++) {
    if (i % 50 === 0) await refreshRV();
    outcomes.push(await runCase(randomCase()));
  }
  const ms = Date.now() - t0;
  const cacheable = outcomes.filter((o) => o.c.cacheable);
  const servedCacheable = cacheable.filter((o) => o.served > 0);
  const neverServed = outcomes.filter((o) => o.c.expect === 'forward' && o.served > 0);
  const reasons = new Map<string, number>();
  for (const o of outcomes) {
    for (const [r, n] of o.fallbacks) reasons.set(`${o.c.expect}: ${r}`, (reasons.get(`${o.c.expect}: ${r}`) ?? 0) + n);
  }
  const byRv = new Map<string, [number, number]>();
  for (const o of cacheable) {
    const k = `${o.c.rv}${o.c.limit !== undefined ? '+limit' : ''}`;
    const [s, n] = byRv.get(k) ?? [0, 0];
    byRv.set(k, [s + (o.served > 0 ? 1 : 0), n + 1]);
  }
  const statuses = new Map<number, number>();
  for (const o of outcomes) statuses.set(o.status, (statuses.get(o.status) ?? 0) + 1);
  log(`${outcomes.length} reads (${coverage} coverage + ${outcomes.length - coverage} random) in ${ms} ms; ` +
    `${outcomes.reduce((n, o) => n + o.pages, 0)} proxied pages; statuses ${JSON.stringify([...statuses])}; retried ${outcomes.filter((o) => o.attempts > 1).length}`);
  log(`cacheable ${cacheable.length}, served from the cache ${servedCacheable.length} (${Math.round((100 * servedCacheable.length) / Math.max(1, cacheable.length))}%); ` +
    `never from the cache ${outcomes.filter((o) => o.c.expect === 'forward').length}; either ${outcomes.filter((o) => o.c.expect === 'either').length} (served ${outcomes.filter((o) => o.c.expect === 'either' && o.served > 0).length})`);
  const missed = cacheable.filter((o) => o.served === 0);
  if (missed.length > 0) log(`cacheable but forwarded (first 10): ${missed.slice(0, 10).map((o) => `${describe(o.c)} → ${JSON.stringify([...o.fallbacks])}`).join('\n  ')}`);
  log(`served/cacheable by resourceVersion mode: ${JSON.stringify([...byRv])}`);
  log(`fallback reasons: ${JSON.stringify([...reasons])}`);
  log(`non-empty 200 lists: ${outcomes.filter((o) => o.items > 0).length}, empty: ${outcomes.filter((o) => o.items === 0).length}; ` +
    `apiserver's trailing empty pages (selectors) the proxy did not send: ${trailingEmptyPages}`);
  assert.deepEqual(neverServed.map((o) => describe(o.c)), [], 'reads the cache must never answer were answered from it');
  // A quiet cluster (the cache caught up before each read): every cacheable read from the cache;
  // the honest retries (the cluster moved between two reads) at most 1% of the cases.
  log(`retries: ${differenceRetries} for a changed answer, ${freshnessRetries} for freshness, over ${outcomes.length} cases`);
  assert.equal(servedCacheable.length, cacheable.length, `only ${servedCacheable.length} of ${cacheable.length} cacheable reads came from the cache`);
  assert.ok(differenceRetries <= Math.ceil(0.01 * outcomes.length), `${differenceRetries} retries for a changed answer over ${outcomes.length} cases`);
  assert.ok(freshnessRetries <= Math.ceil(0.01 * outcomes.length), `${freshnessRetries} retries for freshness over ${outcomes.length} cases`);
  // The generator really covered the ground: non-empty answers, errors, several pages.
  assert.ok(outcomes.filter((o) => o.items > 0).length > 0.4 * outcomes.length);
  assert.ok(outcomes.some((o) => o.status === 400) && outcomes.some((o) => o.status === 422));
  assert.ok(outcomes.filter((o) => o.pages > 2 && o.served > 2).length >= 5, 'multi-page reads served from cache snapshots');
});

/** The list's own resourceVersion (JSON compact or indented, YAML) replaced by a placeholder. */
function withoutListRV(r: Reply): string {
  const t = r.text();
  if (String(r.headers['content-type']).startsWith('application/yaml')) return t.replace(/\nmetadata:\n {2}resourceVersion: "\d+"/, '\nmetadata:\n  resourceVersion: RV');
  return t.replace(/^(\{\s*"kind":\s*"\w+List",\s*"apiVersion":\s*"[^"]+",\s*"metadata":\s*\{\s*"resourceVersion":\s*)"\d+"/, '$1"RV"');
}

test('Accept headers read as the apiserver reads them (go-restful\'s route match, then its negotiation)', async () => {
  const agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) } });
  const raw = async (base: string, path: string, accept: readonly string[]): Promise<Reply> => {
    const headers: string[] = ['authorization', `Bearer ${cluster.info.users.admin.token ?? ''}`];
    for (const a of accept) headers.push('accept', a);
    const res = await request(`${base}${path}`, { headers, dispatcher: agent });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body, text: () => body.toString('utf8'), json: () => JSON.parse(body.toString('utf8')) as unknown };
  };
  const pod = made.pods[0];
  assert.ok(pod);
  const paths = [`/api/v1/namespaces/${NAMESPACES[1] ?? ''}/pods?labelSelector=app%3Ddb`, `/api/v1/namespaces/${pod.ns}/pods/${pod.name}?resourceVersion=0`, '/api/v1/nodes?resourceVersion=0&labelSelector=' + encodeURIComponent(`kcpdiff=${P}`)];
  const accepts: string[][] = [
    ['Application/JSON'], ['application/JSON'], ['application/json;v=v1'], ['application/json;g=meta.k8s.io'], ['application/json; pretty=1'], ['application/json;pretty=1 '],
    ['application/json;pretty=0'], ['application/json;Pretty=1'], ['application/json;pretty=true'], ['application/json;stream=watch'], ['application/json;stream=foo'],
    ['application/json;q=0'], ['*/*;q=0'], ['text/html, */*'], ['application/*'], ['*'], ['application/json, application/*'], ['application/yaml'],
    ['application/yaml, application/json'], ['application/json;sv=v1'], ['application/json;sv=v2'], ['application/json;charset=utf-8'], ['application/json;as=Table'],
    ['application/vnd.kubernetes.protobuf;q=0.5, application/json;q=0.9'], ['application/json;q=0.5, application/vnd.kubernetes.protobuf'],
    ['  application/json  '], ['application/json\t'], ['application /json'], ['application/json/x'], ['application/json,'], [',application/json'], ['text/plain'],
    ['application/vnd.kubernetes.protobuf', 'application/json'], ['application/json', 'application/yaml'], ['text/plain', 'application/json'],
    ['application/json;pretty=1;pretty=0'], ['application/json;pretty'], ['application/json;pretty=1=1'], ['application/json;pretty=1=, application/json'],
  ];
  let jsonForOther = 0;
  let served = 0;
  for (const path of paths) {
    for (const accept of accepts) {
      const what = `${path} Accept: ${JSON.stringify(accept)}`;
      const before = await scrape();
      const p = await raw(proxy.url, path, accept);
      served += total(delta(await scrape(), before, 'kube_cache_proxy_cache_served_total'));
      let d = await raw(direct(), path, accept);
      const pct = String(p.headers['content-type']);
      const dct = String(d.headers['content-type']);
      if (p.status === 200 && pct === 'application/json' && dct !== pct) {
        // The client named JSON too: the cache's JSON answer stands for the apiserver's preferred one.
        assert.equal(d.status, 200, what);
        assert.ok(accept[0]?.includes('application/json'), `${what}: JSON answered though the first Accept line has no JSON (${dct})`);
        d = await raw(direct(), path, ['application/json']);
        jsonForOther++;
      }
      assert.equal(p.status, d.status, `${what}: ${p.text().slice(0, 300)} / ${d.text().slice(0, 300)}`);
      assert.equal(p.headers['content-type'], d.headers['content-type'], what);
      if (String(d.headers['content-type']).includes('protobuf')) continue;
      assert.equal(withoutListRV(p), withoutListRV(d), what);
    }
  }
  log(`Accept variants: ${paths.length * accepts.length} reads, ${served} served from the cache, ${jsonForOther} answered JSON where the apiserver preferred another type the client also named`);
  await agent.close();
});

test('resourceVersion=0 with a limit: the apiserver ignores the limit, and so does the proxy', async () => {
  for (const q of ['resourceVersion=0&limit=3', 'resourceVersion=0&resourceVersionMatch=NotOlderThan&limit=2', `resourceVersion=0&limit=1&labelSelector=${encodeURIComponent('app')}`]) {
    const path = `/api/v1/namespaces/${NAMESPACES[1] ?? ''}/pods?${q}`;
    const d = await call(cluster, direct(), path);
    const before = await scrape();
    const p = await call(cluster, proxy.url, path);
    const served = total(delta(await scrape(), before, 'kube_cache_proxy_cache_served_total'));
    assert.equal(d.status, 200, d.text());
    assert.equal(p.status, 200, p.text());
    const limit = Number(/limit=(\d+)/.exec(q)?.[1]);
    const dm = listMeta(d.body);
    log(`${q}: direct ${itemBytes(d.body).length} items, continue ${dm.continue === undefined ? 'absent' : 'present'}; proxy ${itemBytes(p.body).length} items, served ${served}`);
    // docs/design.md ("Continue tokens and limit"): the watch cache ignores limit for resourceVersion=0; checked against this apiserver:
    assert.equal(dm.continue, undefined);
    assert.ok(itemBytes(d.body).length > limit);
    assert.equal(listMeta(p.body).continue, undefined);
    assert.equal(served, 1, 'served from the cache');
    assert.equal(normalized(p.body), normalized(d.body));
  }
});

test('GET with resourceVersion=0: existing objects byte for byte, missing ones the same 404', async () => {
  const gets: string[] = [];
  for (const m of made.pods.slice(0, 10)) gets.push(`/api/v1/namespaces/${m.ns}/pods/${m.name}`);
  for (const m of made.configmaps.slice(0, 5)) gets.push(`/api/v1/namespaces/${m.ns}/configmaps/${m.name}`);
  for (const m of made.services.slice(0, 4)) gets.push(`/api/v1/namespaces/${m.ns}/services/${m.name}`);
  for (const m of made.endpointslices.slice(0, 3)) gets.push(`/apis/discovery.k8s.io/v1/namespaces/${m.ns}/endpointslices/${m.name}`);
  for (const n of NODES.slice(0, 4)) gets.push(`/api/v1/nodes/${n}`);
  for (const ns of NAMESPACES.slice(0, 3)) gets.push(`/api/v1/namespaces/${ns}`);
  const before = await scrape();
  for (const path of gets) {
    for (const accept of [undefined, 'application/json', '*/*']) {
      const headers: Record<string, string> = accept ? { accept } : {};
      const d = await call(cluster, direct(), `${path}?resourceVersion=0`, { headers });
      const p = await call(cluster, proxy.url, `${path}?resourceVersion=0`, { headers });
      assert.equal(p.status, 200, `${path}: ${p.text()}`);
      assert.equal(d.status, 200);
      assert.equal(p.headers['content-type'], d.headers['content-type']);
      assert.equal(p.text(), d.text(), path);
    }
  }
  const served = delta(await scrape(), before, 'kube_cache_proxy_cache_served_total');
  log(`GET rv=0: ${gets.length * 3} reads, served ${total(served)}`);
  assert.ok(total(served) >= gets.length * 3 * 0.9, `GETs served from the cache: ${JSON.stringify([...served])}`);

  const missing = [
    `/api/v1/namespaces/${P}/pods/no-such-pod`, `/api/v1/namespaces/${P}/configmaps/no-such`, `/api/v1/namespaces/${P}/services/no-such`,
    `/apis/discovery.k8s.io/v1/namespaces/${P}/endpointslices/no-such`, `/api/v1/nodes/${P}-no-such`, `/api/v1/namespaces/${P}-no-such`,
    `/api/v1/namespaces/${P}-no-such/pods/x`,
  ];
  for (const path of missing) {
    for (const q of ['?resourceVersion=0', '']) {
      const d = await call(cluster, direct(), `${path}${q}`);
      const p = await call(cluster, proxy.url, `${path}${q}`);
      assert.equal(d.status, 404, d.text());
      assert.equal(p.status, 404, p.text());
      for (const h of ['content-type', 'content-length', 'cache-control']) assert.equal(p.headers[h], d.headers[h], `${path}${q}: ${h}`);
      assert.equal(p.text(), d.text(), `${path}${q}`);
    }
  }
});

test('gzip: a large list compressed by both, the same bytes inside; a small one by neither', async () => {
  const big = `/api/v1/pods?labelSelector=${encodeURIComponent(`kcpdiff=${P}`)}`;
  const small = `/api/v1/namespaces/${P}/configmaps?limit=2`;
  for (const accept of ['gzip', 'deflate, gzip', 'gzip, deflate, br', ' gzip ,x']) {
    const headers = { 'accept-encoding': accept };
    const [d, p] = await fromCache(async () => [await call(cluster, direct(), big, { headers }), await call(cluster, proxy.url, big, { headers })] as const, `gzip ${accept}`);
    assert.equal(d.status, 200);
    assert.equal(p.status, 200);
    assert.equal(d.headers['content-encoding'], 'gzip', accept);
    assert.equal(p.headers['content-encoding'], 'gzip', accept);
    assert.equal(p.headers['vary'], d.headers['vary']);
    const dz = gunzipSync(d.body);
    const pz = gunzipSync(p.body);
    assert.ok(dz.length > 128 * 1024, `the list is ${dz.length} bytes`);
    assert.equal(normalized(pz), normalized(dz));
    const ds = await call(cluster, direct(), small, { headers });
    const ps = await call(cluster, proxy.url, small, { headers });
    assert.equal(ds.headers['content-encoding'], undefined);
    assert.equal(ps.headers['content-encoding'], undefined);
    assert.equal(normalized(ps.body), normalized(ds.body));
  }
  // Not an exact "gzip" entry (the apiserver takes no parameters and compares case-sensitively): neither compresses.
  for (const accept of ['x-gzip', 'deflate', 'identity', 'gzip;q=1.0', 'deflate, gzip;q=0.5', 'GZIP', 'Gzip, br']) {
    const d = await call(cluster, direct(), big, { headers: { 'accept-encoding': accept } });
    const p = await call(cluster, proxy.url, big, { headers: { 'accept-encoding': accept } });
    assert.equal(d.headers['content-encoding'], undefined, accept);
    assert.equal(p.headers['content-encoding'], undefined, accept);
    assert.equal(normalized(p.body), normalized(d.body));
  }
  // Right at the apiserver's threshold: compressed when the body is more than 128 KiB, not at 128 KiB.
  await thresholdCheck();
});

/** A list body of exactly 128 KiB is sent as is, one byte more is compressed: by both. */
async function thresholdCheck(): Promise<void> {
  const ns = `${P}-gz`;
  await mustCreate('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  extraNamespaces.push(ns);
  await mustCreate(`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big' }, data: { fill: 'x'.repeat(130_000) } });
  const path = `/api/v1/namespaces/${ns}/configmaps`;
  const length = (r: Reply) => (r.headers['content-encoding'] === 'gzip' ? gunzipSync(r.body) : r.body).length;
  let fill = 130_000;
  for (const target of [128 * 1024, 128 * 1024 + 1, 128 * 1024 - 1, 128 * 1024 + 2]) {
    let checked = false;
    for (let attempt = 0; attempt < 8 && !checked; attempt++) {
      const len = (await call(cluster, direct(), path)).body.length;
      if (len !== target) {
        fill += target - len;
        const r = await call(cluster, direct(), `${path}/big`, { method: 'PATCH', body: JSON.stringify({ data: { fill: 'x'.repeat(fill) } }), headers: { 'content-type': 'application/merge-patch+json' } });
        assert.equal(r.status, 200, r.text());
        continue;
      }
      const headers = { 'accept-encoding': 'gzip' };
      const [d, p] = await fromCache(() => Promise.all([call(cluster, direct(), path, { headers }), call(cluster, proxy.url, path, { headers })]), `${target} bytes`, 'configmaps');
      // The list's resourceVersion may have gained a digit in between: measure again then.
      if (length(d) !== target || length(p) !== target) continue;
      const want = target > 128 * 1024 ? 'gzip' : undefined;
      assert.equal(d.headers['content-encoding'], want, `direct, ${target} bytes`);
      assert.equal(p.headers['content-encoding'], want, `proxied, ${target} bytes`);
      checked = true;
    }
    assert.ok(checked, `could not make a list of ${target} bytes`);
  }
}

test('a resourceVersion the cluster has not reached: the apiserver\'s 504 after its wait', async () => {
  const future = (BigInt(recentRV) + 1_000_000n).toString();
  const path = `/api/v1/namespaces/${P}/configmaps?resourceVersion=${future}&resourceVersionMatch=NotOlderThan`;
  const [d, p] = await Promise.all([call(cluster, direct(), path), call(cluster, proxy.url, path)]);
  assert.equal(d.status, 504, d.text());
  assert.equal(p.status, d.status, p.text());
  const strip = (r: Reply) => r.text().replace(/current: \d+/, 'current: N');
  assert.equal(strip(p), strip(d));
});
