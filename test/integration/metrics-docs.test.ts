// The README's Metrics table against what the proxy exports, after a varied load through proxies in
// both authorization modes (cache on, flow control with refusals and queueing, a watch from the
// cache, writes, forwarded GETs, 403s and 404s, users with tokens, a client certificate and a
// ServiceAccount): (a) every kube_cache_proxy_* family exported is documented with its type and
// label names, and every documented one is exported (`# HELP` lines list a family before its first
// sample); (b) label cardinality is bounded: no label value holds a user name, an object or
// namespace name of the load, a token, a path or a query string, and no family has more series than
// SERIES_BOUND (the README states it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type CallOptions, type TestUser } from '../helpers/http.js';
import { repoRoot } from '../cluster/paths.js';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { parseFlowControlConfig } from '../../flowcontrol/config.js';

const cluster = sharedCluster();
const direct = cluster.info.apiservers[0]?.url ?? '';
const MARK = `mdx${Date.now().toString(36)}`;
const NS = `metrics-docs-${MARK}`;
const SA = `robot-${MARK}`;
const OBJECTS = [`cm-alpha-${MARK}`, `cm-beta-${MARK}`, `cm-gamma-${MARK}`];
const MISSING = `cm-missing-${MARK}`;
/** The most series one family may have after the load (histograms: without their `le` buckets). README, "Metrics". */
const SERIES_BOUND = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Doc { readonly type: string; readonly labels: readonly string[] }

/** The README's Metrics table: name → type and label names (the backticked names outside parentheses). */
function readmeTable(): Map<string, Doc> {
  const text = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const start = text.indexOf('\n## Metrics');
  assert.ok(start >= 0, 'README.md has a "## Metrics" section');
  const end = text.indexOf('\n## ', start + 1);
  const out = new Map<string, Doc>();
  for (const line of text.slice(start, end < 0 ? undefined : end).split('\n')) {
    const cells = line.split(' | ');
    const name = /^\| `(kube_cache_proxy_[a-z0-9_]+)`$/.exec(cells[0] ?? '')?.[1];
    if (!name) continue;
    const labels = [...(cells[2] ?? '').replace(/\([^)]*\)/g, '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1] ?? '');
    out.set(name, { type: cells[1] ?? '', labels: labels.sort() });
  }
  return out;
}

interface Exposition {
  readonly types: Map<string, string>;
  /** Family → its series (label sets without `le`, as JSON), from every sample of the family. */
  readonly series: Map<string, Set<string>>;
  readonly samples: Array<{ family: string; labels: Record<string, string> }>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const series = new Map<string, Set<string>>();
  const samples: Exposition['samples'] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1] ?? '', t[2] ?? '');
    const h = /^# HELP (\S+) /.exec(line);
    if (h && !types.has(h[1] ?? '')) types.set(h[1] ?? '', '');
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!m) continue;
    let family = m[1] ?? '';
    const base = /^(.*)_(bucket|sum|count)$/.exec(family)?.[1];
    if (base && types.get(base) === 'histogram') family = base;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) if (l[1] !== 'le') labels[l[1] ?? ''] = l[2] ?? '';
    samples.push({ family, labels });
    let s = series.get(family);
    if (!s) series.set(family, (s = new Set()));
    s.add(JSON.stringify(Object.entries(labels).sort()));
  }
  return { types, series, samples };
}

const proxies: TestProxy[] = [];
const expositions: Array<{ mode: string; e: Exposition }> = [];
let saToken = '';
const agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) } });

async function ok(what: string, p: Promise<{ status: number; text(): string }>, ...codes: number[]): Promise<void> {
  const r = await p;
  assert.ok((codes.length ? codes : [200, 201]).includes(r.status), `${what}: ${r.status} ${r.text().slice(0, 300)}`);
}

/** A request as the ServiceAccount (its bound token), through `base`. */
async function asRobot(base: string, path: string): Promise<number> {
  const r = await request(`${base}${path}`, { headers: { authorization: `Bearer ${saToken}` }, dispatcher: agent });
  await r.body.arrayBuffer();
  return r.statusCode;
}

/** A client-go-like watch from the cache, read until its timeout ends it; writes happen meanwhile. */
async function watchDuringWrites(base: string, write: () => Promise<void>): Promise<number> {
  const r = await request(`${base}/api/v1/namespaces/${NS}/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=3`, {
    headers: { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` }, dispatcher: agent,
  });
  const body = r.body.text();
  await write();
  const text = await body;
  return text.split('\n').filter((l) => l !== '').length;
}

async function load(t: TestProxy): Promise<void> {
  const p = (path: string, o: CallOptions = {}) => call(cluster, t.url, path, o);
  const as = (user: TestUser) => ({ user });
  // Writes through the proxy.
  for (const name of OBJECTS) {
    await ok(`create ${name}`, p(`/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: JSON.stringify({ metadata: { name, labels: { app: MARK } }, data: { k: name } }) }), 201, 409);
  }
  await ok('patch', p(`/api/v1/namespaces/${NS}/configmaps/${OBJECTS[0] ?? ''}`, { method: 'PATCH', body: JSON.stringify({ data: { k: 'patched' } }), headers: { 'content-type': 'application/merge-patch+json' } }));
  // Reads from the cache: consistent and rv=0 LISTs, selectors, pages, GET rv=0; forwarded: a consistent GET, a table.
  await ok('list', p(`/api/v1/namespaces/${NS}/configmaps`));
  await ok('list rv=0', p(`/api/v1/namespaces/${NS}/configmaps?resourceVersion=0`));
  await ok('list label', p(`/api/v1/namespaces/${NS}/configmaps?labelSelector=app%3D${MARK}`));
  await ok('list field', p(`/api/v1/namespaces/${NS}/configmaps?fieldSelector=metadata.name%3D${OBJECTS[1] ?? ''}`));
  await ok('list pods by node', p('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1'));
  const page = await p(`/api/v1/namespaces/${NS}/configmaps?limit=1`);
  const cont = (page.json() as { metadata?: { continue?: string } }).metadata?.continue;
  if (cont) await ok('next page', p(`/api/v1/namespaces/${NS}/configmaps?limit=1&continue=${encodeURIComponent(cont)}`));
  await ok('get rv=0', p(`/api/v1/namespaces/${NS}/configmaps/${OBJECTS[1] ?? ''}?resourceVersion=0`));
  await ok('get', p(`/api/v1/namespaces/${NS}/configmaps/${OBJECTS[2] ?? ''}`));
  await ok('table', p(`/api/v1/namespaces/${NS}/configmaps`, { headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } }));
  await ok('namespaces', p('/api/v1/namespaces'));
  await ok('nodes', p('/api/v1/nodes?resourceVersion=0'));
  await ok('crds', p('/apis/apiextensions.k8s.io/v1/customresourcedefinitions'));
  // Non-resource requests.
  for (const path of ['/version', '/api', '/apis', '/healthz', '/openapi/v2?timeout=32s']) await ok(path, p(path));
  // Errors: 404 for an object and a namespace that do not exist, 403 for users without the right.
  await ok('404 object', p(`/api/v1/namespaces/${NS}/configmaps/${MISSING}`), 404);
  await ok('404 object rv=0', p(`/api/v1/namespaces/${NS}/configmaps/${MISSING}?resourceVersion=0`), 404);
  await ok('viewer allowed', p('/api/v1/namespaces/team-a/configmaps', as('viewer')));
  await ok('viewer 403', p(`/api/v1/namespaces/${NS}/configmaps`, as('viewer')), 403);
  await ok('nobody 403', p('/api/v1/pods', as('nobody')), 403);
  await ok('anonymous 401/403', p(`/api/v1/namespaces/${NS}/configmaps`, as('anonymous')), 401, 403);
  await ok('node 200', p('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1', as('node1')));
  await ok('node 403', p(`/api/v1/namespaces/${NS}/configmaps/${OBJECTS[0] ?? ''}`, as('node1')), 403);
  assert.equal(await asRobot(t.url, `/api/v1/namespaces/${NS}/configmaps`), 403);
  assert.equal(await asRobot(t.url, `/api/v1/namespaces/${NS}/serviceaccounts/${SA}`), 403);
  // Flow control: a burst beyond a tight level's bucket (refusals), and one through a queueing level.
  const flood = (ua: string) => Promise.all(Array.from({ length: 12 }, () => p('/api/v1/namespaces/team-a/configmaps', { user: 'viewer', headers: { 'user-agent': ua } })));
  const refused = (await flood('metrics-flood/1')).filter((r) => r.status === 429).length;
  assert.ok(refused > 0, 'the tight level refused some of the burst');
  await flood('metrics-queue/1');
  // A watch from the cache while objects change; then the last object is deleted.
  const lines = await watchDuringWrites(t.url, async () => {
    await sleep(300);
    await ok('patch during watch', p(`/api/v1/namespaces/${NS}/configmaps/${OBJECTS[1] ?? ''}`, { method: 'PATCH', body: JSON.stringify({ data: { k: 'again' } }), headers: { 'content-type': 'application/merge-patch+json' } }));
  });
  assert.ok(lines >= OBJECTS.length + 1, `the watch got the objects and the change (${lines} lines)`);
  await ok('delete', p(`/api/v1/namespaces/${NS}/configmaps/${OBJECTS[2] ?? ''}`, { method: 'DELETE' }));
  await ok('recreate', p(`/api/v1/namespaces/${NS}/configmaps`, { method: 'POST', body: JSON.stringify({ metadata: { name: OBJECTS[2] } }) }), 201);
}

async function waitReady(t: TestProxy): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${t.metricsUrl}/readyz`);
    await r.text();
    if (r.status === 200) return;
    await sleep(100);
  }
  assert.fail('the proxy did not become ready in 30 s');
}

before(async () => {
  await ok('namespace', call(cluster, direct, '/api/v1/namespaces', { method: 'POST', body: JSON.stringify({ metadata: { name: NS } }) }), 201);
  await ok('serviceaccount', call(cluster, direct, `/api/v1/namespaces/${NS}/serviceaccounts`, { method: 'POST', body: JSON.stringify({ metadata: { name: SA } }) }), 201);
  const tr = await call(cluster, direct, `/api/v1/namespaces/${NS}/serviceaccounts/${SA}/token`, { method: 'POST', body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } }) });
  assert.equal(tr.status, 201, tr.text());
  saToken = (tr.json() as { status?: { token?: string } }).status?.token ?? '';
  assert.ok(saToken.length > 20, 'a ServiceAccount token');
  const flowControl = parseFlowControlConfig({
    levels: [
      { name: 'tight', qps: 2, burst: 2, flowBy: 'user', queue: { length: 0 } },
      { name: 'queued', qps: 10, burst: 1, flowBy: 'user', queue: { length: 50, lengthPerFlow: 50, maxWaitSeconds: 3 } },
      { name: 'default' },
    ],
    rules: [
      { name: 'flood', level: 'tight', userAgents: [{ prefix: 'metrics-flood/' }] },
      { name: 'queue', level: 'queued', userAgents: [{ prefix: 'metrics-queue/' }] },
    ],
    defaultLevel: 'default',
  }, DEFAULT_FLOW_CONTROL);
  for (const mode of ['probe', 'local'] as const) {
    const t = await startTestProxy(cluster, { cache: cacheConfigFrom({ authorizationMode: mode }), flowControl });
    proxies.push(t);
    await waitReady(t);
    await load(t);
    const res = await fetch(`${t.metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    expositions.push({ mode, e: parseExposition(await res.text()) });
  }
});

after(async () => {
  await Promise.all(proxies.map((t) => t.stop()));
  // The namespace stays (the test cluster runs no namespace controller to finish deleting it).
  for (const name of OBJECTS) await call(cluster, direct, `/api/v1/namespaces/${NS}/configmaps/${name}`, { method: 'DELETE' }).catch(() => undefined);
  await call(cluster, direct, `/api/v1/namespaces/${NS}/serviceaccounts/${SA}`, { method: 'DELETE' }).catch(() => undefined);
  await closeAgents();
  await agent.close();
});

const ours = (name: string) => name.startsWith('kube_cache_proxy_');

test('every exported kube_cache_proxy_* family is in the README table with its type, and every documented one is exported', () => {
  const doc = readmeTable();
  assert.ok(doc.size >= 40, `README lists only ${doc.size} metrics`);
  const exported = new Map<string, string>();
  for (const { e } of expositions) for (const [name, type] of e.types) if (ours(name)) exported.set(name, type);
  const undocumented = [...exported.keys()].filter((n) => !doc.has(n)).sort();
  const missing = [...doc.keys()].filter((n) => !exported.has(n)).sort();
  assert.deepEqual({ undocumented, missing }, { undocumented: [], missing: [] });
  const wrongType = [...exported].filter(([n, type]) => doc.get(n)?.type !== type).map(([n, type]) => `${n}: exported ${type}, README ${doc.get(n)?.type ?? ''}`);
  assert.deepEqual(wrongType, []);
});

test('every family\'s samples carry exactly the README\'s label names', () => {
  const doc = readmeTable();
  const problems: string[] = [];
  const withSamples = new Set<string>();
  for (const { mode, e } of expositions) {
    for (const s of e.samples) {
      if (!ours(s.family)) continue;
      withSamples.add(s.family);
      const names = Object.keys(s.labels).sort();
      const want = doc.get(s.family)?.labels ?? [];
      if (names.join(',') !== want.join(',')) problems.push(`${mode}: ${s.family}{${names.join(',')}}, README: ${want.join(',') || '(none)'}`);
    }
  }
  assert.deepEqual([...new Set(problems)], []);
  const noSamples = [...doc.keys()].filter((n) => !withSamples.has(n)).sort();
  process.stderr.write(`[metrics-docs] ${withSamples.size} families with samples; none yet (labels unchecked): ${noSamples.join(', ') || 'none'}\n`);
  // The load reaches most families: the request, cache, flow-control, authorization and backend ones.
  for (const n of ['kube_cache_proxy_requests_total', 'kube_cache_proxy_cache_served_total', 'kube_cache_proxy_cache_fallbacks_total',
    'kube_cache_proxy_flowcontrol_rejected_total', 'kube_cache_proxy_flowcontrol_queued_total', 'kube_cache_proxy_authorization_reviews_total',
    'kube_cache_proxy_authorization_decisions_total', 'kube_cache_proxy_cache_watchers_closed_total', 'kube_cache_proxy_backend_requests_total']) {
    assert.ok(withSamples.has(n), `${n} has samples after the load`);
  }
});

test('label values hold no user, object or namespace name, token, path or query string', () => {
  const users = ['admin', 'viewer', 'nobody', 'system:node', 'node-1', 'system:serviceaccount', SA];
  const secrets = [cluster.info.users.admin.token ?? '', cluster.info.users.viewer.token ?? '', cluster.info.users.nobody.token ?? '', saToken].filter((s) => s !== '');
  const problems: string[] = [];
  for (const { mode, e } of expositions) {
    for (const s of e.samples) {
      if (!ours(s.family)) continue;
      for (const [label, v] of Object.entries(s.labels)) {
        const bad = [
          ...users.filter((u) => v.includes(u)).map((u) => `user ${u}`),
          ...(v.includes(MARK) ? ['a name from the load'] : []),
          ...secrets.filter((tok) => v.includes(tok.slice(0, 16))).map(() => 'a token'),
          ...(/^\/|\/api|[?&=%]/.test(v) ? ['a path or query'] : []),
        ];
        if (bad.length) problems.push(`${mode}: ${s.family}{${label}="${v}"}: ${bad.join(', ')}`);
      }
    }
  }
  assert.deepEqual([...new Set(problems)], []);
});

test(`no family has more than ${SERIES_BOUND} series`, () => {
  const counts: string[] = [];
  const over: string[] = [];
  for (const { mode, e } of expositions) {
    for (const [family, s] of e.series) {
      if (!ours(family)) continue;
      if (s.size >= 20) counts.push(`${mode} ${family}=${s.size}`);
      if (s.size > SERIES_BOUND) over.push(`${mode}: ${family} has ${s.size} series`);
    }
  }
  process.stderr.write(`[metrics-docs] families with 20 or more series: ${counts.join(', ') || 'none'}\n`);
  assert.deepEqual(over, []);
});
