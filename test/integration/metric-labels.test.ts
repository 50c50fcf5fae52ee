// Metric label values never come from what a client typed: 10,000 requests to made-up paths (made-up
// resources, API groups, versions and subresources, authenticated, unauthenticated and with a bad
// token, plus made-up HTTP/2 methods) add a bounded handful of series to every metric family, not one
// per path. The resource label takes only the built-in resources, the cached ones and `other`; the
// built-in list covers every resource the test apiserver serves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { Agent, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents } from '../helpers/http.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { KNOWN_VERBS, OTHER, requestLabels } from '../../proxy/metric-labels.js';

const cluster = sharedCluster();
const ca = readFileSync(cluster.info.caFile);
const direct = () => cluster.info.apiservers[0]?.url ?? '';
let proxy: TestProxy;
let agent: Agent;
before(async () => {
  // Flow control off: the point is how many series the answers create, not how fast they come.
  proxy = await startTestProxy(cluster, { flowControl: { ...DEFAULT_FLOW_CONTROL, enabled: false } });
  agent = new Agent({ connect: { ca }, connections: 16 });
});
after(async () => {
  if (agent) await agent.close();
  if (proxy) await proxy.stop();
  await closeAgents();
});

interface Sample { readonly family: string; readonly labels: ReadonlyMap<string, string> }

/** Every sample of the kube_cache_proxy_* families, keyed by its whole line up to the value. */
async function series(): Promise<Map<string, Sample>> {
  const text = await (await request(`${proxy.metricsUrl}/metrics`)).body.text();
  const out = new Map<string, Sample>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('kube_cache_proxy_')) continue;
    const key = line.slice(0, line.lastIndexOf(' '));
    const brace = key.indexOf('{');
    const name = brace < 0 ? key : key.slice(0, brace);
    const family = name.replace(/_(bucket|sum|count)$/, '');
    const labels = new Map<string, string>();
    for (const m of (brace < 0 ? '' : key.slice(brace)).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1] ?? '', m[2] ?? '');
    out.set(key, { family, labels });
  }
  return out;
}

const rnd = (n = 6) => randomBytes(n).toString('hex');
const token = cluster.info.users.admin.token ?? '';
type Auth = 'admin' | 'none' | 'bad-token';

function madeUpPath(i: number): string {
  switch (i % 8) {
    case 0: return `/api/v1/${rnd()}`;
    case 1: return `/apis/${rnd()}.example.com/${rnd(3)}/${rnd()}`;
    case 2: return `/api/v1/namespaces/default/pods/p-${rnd(3)}/${rnd()}`;
    case 3: return `/apis/apps/v1/namespaces/default/deployments/d/${rnd()}`;
    case 4: return `/api/v1/namespaces/${rnd()}/${rnd()}/${rnd()}/${rnd()}`;
    case 5: return `/apis/${rnd()}/${rnd()}/namespaces/default/${rnd()}?watch=1&timeoutSeconds=1`;
    case 6: return `/api/${rnd(2)}/${rnd()}?labelSelector=${rnd()}`;
    default: return `/${rnd()}/${rnd()}`;
  }
}

async function send(path: string, auth: Auth, method: 'GET' | 'POST' | 'DELETE'): Promise<number> {
  const headers: Record<string, string> = {};
  if (auth === 'admin') headers['authorization'] = `Bearer ${token}`;
  if (auth === 'bad-token') headers['authorization'] = `Bearer ${rnd(16)}`;
  if (method === 'POST') headers['content-type'] = 'application/json';
  const res = await request(`${proxy.url}${path}`, { method, headers, dispatcher: agent, ...(method === 'POST' ? { body: '{}' } : {}) });
  await res.body.dump();
  return res.statusCode;
}

/** Requests with made-up methods over HTTP/2, where :method is any token. */
async function madeUpMethods(n: number): Promise<number[]> {
  const session = connect(proxy.url, { ca });
  try {
    return await Promise.all(Array.from({ length: n }, (_, i) => new Promise<number>((resolve, reject) => {
      const s = session.request({ ':method': `M${rnd(4).toUpperCase()}`, ':path': i % 2 ? `/api/v1/${rnd()}` : '/api/v1/pods', authorization: `Bearer ${token}` });
      let status = 0;
      s.on('response', (h) => { status = Number(h[':status']); });
      s.on('error', reject);
      s.resume();
      s.on('end', () => resolve(status));
      s.end();
    })));
  } finally {
    session.close();
  }
}

test('10,000 made-up paths and 200 made-up methods add a bounded number of series to every family', async (t) => {
  // One of each kind first, so that the families and the bounded values exist before the baseline.
  for (let i = 0; i < 8; i++) await send(madeUpPath(i), 'admin', 'GET');
  const beforeSeries = await series();
  const N = 10_000;
  let next = 0;
  const codes = new Map<number, number>();
  const started = Date.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < N) {
      const i = next++;
      const auth: Auth = i % 3 === 0 ? 'none' : i % 3 === 1 ? 'admin' : 'bad-token';
      const method = i % 11 === 0 ? 'POST' : i % 13 === 0 ? 'DELETE' : 'GET';
      const code = await send(madeUpPath(i), auth, method);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  }));
  for (const c of await madeUpMethods(200)) codes.set(c, (codes.get(c) ?? 0) + 1);
  t.diagnostic(`${N} + 200 requests in ${Date.now() - started} ms, answers ${JSON.stringify(Object.fromEntries(codes))}`);
  for (const c of codes.keys()) assert.ok(c < 500, `a 5xx for a made-up path: ${JSON.stringify(Object.fromEntries(codes))}`);

  const afterSeries = await series();
  assert.ok(beforeSeries.size > 0, 'no series parsed from /metrics');
  const added = new Map<string, Sample[]>();
  for (const [key, s] of afterSeries) {
    if (beforeSeries.has(key)) continue;
    const list = added.get(s.family) ?? [];
    list.push(s);
    added.set(s.family, list);
  }
  t.diagnostic(`series before ${beforeSeries.size}, after ${afterSeries.size}; added per family ${JSON.stringify(Object.fromEntries([...added].map(([f, l]) => [f, l.length])))}`);

  // The bound: the new label values are `other` for made-up resources and `<resource>/other` for
  // made-up subresources of real ones; verbs are kube's, the HTTP methods, or `other`; codes are
  // the three-digit answers. Series = verbs x resources x codes x sources, each from those sets.
  const allowedResources = requestLabels(proxy.proxy.cache?.config.resources ?? []).resourceValues;
  const verbs = new Set([...KNOWN_VERBS, OTHER]);
  const newValues = (label: string) => new Set([...afterSeries.values()].map((s) => s.labels.get(label)).filter((v): v is string => v !== undefined));
  assert.ok(newValues('resource').has(OTHER), 'made-up resources were not counted as "other"');
  for (const r of newValues('resource')) assert.ok(allowedResources.has(r), `resource label "${r}" is not from the bounded set`);
  const requestResources = new Set([...added.get('kube_cache_proxy_requests_total') ?? []].map((s) => s.labels.get('resource')));
  assert.ok([...requestResources].every((r) => r === undefined || ['', OTHER, `pods/${OTHER}`, `deployments.apps/${OTHER}`, 'pods'].includes(r)),
    `new resource label values: ${JSON.stringify([...requestResources])}`);
  for (const [family, samples] of added) {
    for (const s of samples) {
      const verb = s.labels.get('verb');
      if (verb !== undefined) assert.ok(verbs.has(verb), `${family}: verb label "${verb}"`);
      const code = s.labels.get('code');
      if (code !== undefined) assert.match(code, /^\d{3}$/, `${family}: code label "${code}"`);
    }
  }
  // 5 resource values x 16 verbs x the codes seen x 2 sources, for the counter; the histogram has
  // no code but 16 buckets + sum + count per series. Far below one per request either way.
  const requestBound = 5 * verbs.size * codes.size * 2;
  const durationBound = 5 * verbs.size * 2 * 18;
  assert.ok((added.get('kube_cache_proxy_requests_total')?.length ?? 0) <= requestBound,
    `requests_total: ${added.get('kube_cache_proxy_requests_total')?.length} new series, bound ${requestBound}`);
  assert.ok((added.get('kube_cache_proxy_request_duration_seconds')?.length ?? 0) <= durationBound,
    `request_duration_seconds: ${added.get('kube_cache_proxy_request_duration_seconds')?.length} new series, bound ${durationBound}`);
  for (const [family, samples] of added) {
    if (family === 'kube_cache_proxy_requests_total' || family === 'kube_cache_proxy_request_duration_seconds') continue;
    // Every other family's labels come from configuration or fixed reasons: a few new ones at most.
    assert.ok(samples.length <= 20, `${family}: ${samples.length} new series: ${JSON.stringify(samples.slice(0, 5).map((s) => Object.fromEntries(s.labels)))}`);
  }
  // The same 10,000 again adds nothing at all: every label value is already there.
  const again = await series();
  for (let i = 0; i < 2000; i++) await send(madeUpPath(i), i % 2 ? 'admin' : 'none', 'GET');
  const third = await series();
  const grown = [...third.keys()].filter((k) => !again.has(k));
  assert.ok(grown.length <= 10, `2,000 more made-up paths added ${grown.length} series: ${grown.slice(0, 5).join(', ')}`);
  const ok = await call(cluster, proxy.url, '/version');
  assert.equal(ok.status, 200);
});

test('the built-in resource list covers every resource the apiserver serves', async () => {
  const labels = requestLabels([]);
  const missing: string[] = [];
  const groups = (await call(cluster, direct(), '/apis')).json() as { groups: Array<{ name: string; versions: Array<{ groupVersion: string }> }> };
  const lists = ['/api/v1', ...groups.groups.flatMap((g) => g.versions.map((v) => `/apis/${v.groupVersion}`))];
  for (const path of lists) {
    const r = await call(cluster, direct(), path);
    assert.equal(r.status, 200, path);
    const list = r.json() as { groupVersion: string; resources: Array<{ name: string }> };
    const group = list.groupVersion.includes('/') ? list.groupVersion.split('/')[0] ?? '' : '';
    for (const res of list.resources) {
      const [resource = '', subresource = ''] = res.name.split('/');
      const info = { isResourceRequest: true, apiGroup: group, resource, subresource } as const;
      const label = labels.resource({ ...EMPTY_INFO, ...info });
      if (label === OTHER || label.endsWith(`/${OTHER}`)) missing.push(`${res.name} in ${list.groupVersion}`);
    }
  }
  assert.deepEqual(missing, [], 'resources the apiserver serves that the label list lacks');
});

const EMPTY_INFO = {
  isResourceRequest: false, path: '', verb: 'get', apiPrefix: '', apiGroup: '', apiVersion: '', namespace: '', resource: '',
  subresource: '', name: '', parts: [], fieldSelector: '', labelSelector: '', query: new Map<string, readonly string[]>(), queryLossy: false,
};
