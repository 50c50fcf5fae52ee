// Differential test of the query parameters of reads the proxy answers from its cache: a few hundred
// bad and borderline values of resourceVersion, resourceVersionMatch, limit, continue,
// timeoutSeconds, sendInitialEvents, allowWatchBookmarks, labelSelector, fieldSelector and watch,
// on GETs, LISTs and WATCHes of cached resources, sent through the proxy and straight to the
// apiserver with the same credentials. The status code and the Status body must be identical
// (compared after parsing the JSON); a list's items, an object's name and a watch's first line must
// match; never a 5xx of the proxy's own; and the proxy still serves afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const cluster = sharedCluster();
const direct = () => cluster.info.apiservers[0]?.url ?? '';
const token = cluster.info.users.admin.token ?? '';
const NS = `sp-${randomBytes(3).toString('hex')}`;
const NODE = `${NS}-node`;
let proxy: TestProxy;
let agent: Agent;

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : {});

async function mustCreate(path: string, body: unknown): Promise<void> {
  const r = await call(cluster, direct(), path, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 201, `POST ${path}: ${r.text()}`);
}

before(async () => {
  agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) }, connections: 8 });
  proxy = await startTestProxy(cluster);
  await mustCreate('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  for (let i = 0; i < 5; i++) {
    await mustCreate(`/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}`, labels: { app: i % 2 ? 'web' : 'db', n: String(i) } } });
    await mustCreate(`/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod-${i}`, labels: { app: 'web' } },
      spec: { nodeName: i < 3 ? NODE : '', containers: [{ name: 'c', image: 'x' }] },
    });
  }
  // The cache has caught up when a resourceVersion=0 list through the proxy shows every object.
  await waitFor('the cache holds the test objects', async () => {
    const [c, p] = await Promise.all([
      call(cluster, proxy.url, `/api/v1/namespaces/${NS}/configmaps?resourceVersion=0`),
      call(cluster, proxy.url, `/api/v1/namespaces/${NS}/pods?resourceVersion=0`),
    ]);
    const n = (r: typeof c) => (rec(r.json())['items'] as unknown[] | undefined)?.length ?? 0;
    return n(c) >= 5 && n(p) >= 5 ? true : undefined;
  }, 30_000);
});

after(async () => {
  await call(cluster, direct(), `/api/v1/namespaces/${NS}`, { method: 'DELETE' });
  if (agent) await agent.close();
  if (proxy) await proxy.stop();
  await closeAgents();
});

// ------------------------------------------------------------------------------------------------
// The values. Each is a raw query fragment (already escaped where it must be).

const enc = encodeURIComponent;
const q = (k: string, v: string) => `${k}=${enc(v)}`;
const LONG = 'x'.repeat(3000);

const INTS = ['-1', '-5', '0', '00', '1', '+5', ' 5', '5 ', '1.5', '1e3', '0x10', '0b1', '', 'abc', '\u0663', '\uff15',
  '9223372036854775807', '9223372036854775808', '99999999999999999999999', '-9223372036854775809', LONG];
const RVS = ['abc', '-1', '1e3', '0x10', '', ' 1', '1 ', '+5', '0.5', '00', '0', '1', '18446744073709551616',
  '99999999999999999999999', '\u00e9', LONG, '0 ', 'null', 'true'];
const MATCHES = ['Exact', 'NotOlderThan', 'exact', 'notolderthan', 'Bogus', '', 'Exact ', '\u00e9'];
const BOOLS = ['maybe', 'true', 'false', 'FALSE', 'fal\u017fe', '0', '1', '', 'tru', 'yes', 'no', '\u00e9', LONG];
const LABEL_SELECTORS = ['a=', '=b', 'a==b==c', 'a in (', 'a in ()', 'a notin (x,', '!', '!!a', 'a,,b', 'a!=', 'a=b,', ',',
  'a b', 'a=b c', `${'k'.repeat(64)}=1`, `a=${'v'.repeat(64)}`, `${'k'.repeat(63)}=1`, `a=${'v'.repeat(63)}`, 'a=\u00e9', '\u00e9=1', 'a in (b,c',
  'a=(b)', 'a>1', 'a>x', 'a<1.5', 'a>-1', 'a>01', 'a gt 1', 'A/B=c', 'a/b/c=d', '/a=b', 'example.com/=x', 'a=b\u0000',
  'a=b,a=c', 'a in (b),a notin (b)', 'app=web', 'app', '!app', 'app in (web,db)', 'app notin (web)', 'n>2', 'n<2', 'n>2,app=db',
  '  app = web  ', 'app==web', 'app!=web', '-a=b', 'a-=b', '.a=b', 'a.=b', 'a=-b', 'a=b-', 'a=_b', 'a=b_', 'a=b.c', 'a=b/c',
  'a in (b c)', 'a in(b)', 'ain(b)', 'a,', ',a', 'a=b=c', 'a!b', 'a!==b', 'a=!b', 'x/y=z', 'x.example.com/y=z', `${'d'.repeat(254)}/k=v`,
  `${'d'.repeat(253)}/k=v`, 'a in (,)', 'a in (b,)', 'a in (,b)', 'n>99999999999999999999', 'n>-0', 'n>+1', 'n<1e3', LONG, `a=${LONG}`];
const FIELD_SELECTORS = ['metadata.name', 'metadata.name=', '=x', 'metadata.name==a==b', 'metadata.name=a,b', 'metadata.name!=',
  'spec.nodeName=x', 'metadata.namespace=\\x', 'metadata.name=a\\', 'metadata.name in (a)', 'status.phase=Running', 'metadata.name=\u00e9',
  `metadata.name=${LONG}`, 'metadata.name=cm-1', 'metadata.name!=cm-1', 'metadata.name=cm-1,metadata.name=cm-2', 'metadata.name=a\\,b',
  'metadata.name=a\\=b', 'metadata.name=a=b', 'metadata.name\\=x=y', ' metadata.name=cm-1', 'metadata.name =cm-1', 'metadata.name= cm-1',
  'metadata.uid=x', 'bogus=x', 'metadata.name=cm-1,', ',', ',,', 'metadata.labels.app=web', 'spec.nodeName!=x', 'spec.restartPolicy=Always',
  'status.podIP=1.2.3.4', 'spec.schedulerName=default-scheduler', 'metadata.namespace=default', `spec.nodeName=${NODE}`];
const CONTINUES = ['garbage', Buffer.from('garbage').toString('base64'), Buffer.from('{"v":"meta.k8s.io/v1","rv":5,"start":"x"}').toString('base64'),
  Buffer.from('{"v":"meta.k8s.io/v1","rv":-5,"start":"x"}').toString('base64url'), 'kcp1.garbage', 'kcp1.', 'kcp1.AAAAAAAAAAAAAAAA.x',
  'kcp1.AAAAAAAAAAAAAAAA.99999999999999', '\u00e9', LONG, '=', '%'];

/** Query strings: each value of each parameter, and the repeated keys. */
function queries(extra: { apiContinue: string; proxyContinue: string }): string[] {
  const out: string[] = [];
  for (const v of INTS) out.push(q('limit', v), q('timeoutSeconds', v), `${q('limit', v)}&resourceVersion=0`);
  for (const v of RVS) out.push(q('resourceVersion', v), `${q('resourceVersion', v)}&limit=2`, `${q('resourceVersion', v)}&resourceVersionMatch=NotOlderThan`);
  for (const m of MATCHES) out.push(q('resourceVersionMatch', m), `resourceVersion=0&${q('resourceVersionMatch', m)}`, `resourceVersion=abc&${q('resourceVersionMatch', m)}`);
  for (const b of BOOLS) out.push(q('sendInitialEvents', b), q('allowWatchBookmarks', b), q('watch', b), `resourceVersion=0&${q('allowWatchBookmarks', b)}`);
  for (const s of LABEL_SELECTORS) out.push(q('labelSelector', s));
  for (const s of FIELD_SELECTORS) out.push(q('fieldSelector', s));
  for (const c of [...CONTINUES, extra.apiContinue, extra.proxyContinue]) out.push(q('continue', c), `${q('continue', c)}&limit=1`, `${q('continue', c)}&resourceVersion=5`);
  out.push(
    'limit=5&limit=abc', 'limit=abc&limit=5', 'resourceVersion=0&resourceVersion=abc', 'resourceVersion=abc&resourceVersion=0',
    'labelSelector=app%3Dweb&labelSelector=(', 'labelSelector=(&labelSelector=app%3Dweb', 'watch=false&watch=true', 'watch=true&watch=false',
    'fieldSelector=metadata.name%3Dcm-1&fieldSelector=bogus', 'timeoutSeconds=5&timeoutSeconds=-5', 'resourceVersionMatch=NotOlderThan&resourceVersionMatch=Exact&resourceVersion=1',
    'limit', 'resourceVersion', 'labelSelector', 'fieldSelector', 'continue', '&&&', 'limit=1&&limit=2', 'Limit=-1', 'LIMIT=abc',
    'sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true',
    'sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=fal%C5%BFe',
    'sendInitialEvents=true&resourceVersionMatch=Exact&allowWatchBookmarks=true&resourceVersion=0',
    'sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true',
  );
  return out;
}

// ------------------------------------------------------------------------------------------------
// One exchange, and what of it must match.

interface Seen {
  readonly status: number;
  /** Parsed JSON body (a Status, a list's names, an object's name) or the watch's first line. */
  readonly summary: unknown;
}

/** The parts of a watch event line that must match: type, and for ERROR the Status without digits in the message. */
function eventSummary(line: string): unknown {
  let e: Rec;
  try {
    e = rec(JSON.parse(line));
  } catch {
    return { unparsed: line.slice(0, 200) };
  }
  const o = rec(e['object']);
  if (e['type'] === 'ERROR') return { type: 'ERROR', object: { ...o, message: String(o['message']).replace(/\d{3,}/g, 'N') } };
  const name = rec(o['metadata'])['name'];
  return { type: e['type'], kind: o['kind'], ...(e['type'] === 'BOOKMARK' ? {} : { name }) };
}

function bodySummary(status: number, text: string): unknown {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { text: text.slice(0, 300) };
  }
  const b = rec(body);
  if (status !== 200) return body;
  if (Array.isArray(b['items'])) {
    const meta = rec(b['metadata']);
    return {
      kind: b['kind'], names: b['items'].map((i) => `${String(rec(rec(i)['metadata'])['namespace'])}/${String(rec(rec(i)['metadata'])['name'])}`),
      more: typeof meta['continue'] === 'string' && meta['continue'] !== '', remaining: meta['remainingItemCount'],
    };
  }
  return { kind: b['kind'], name: rec(b['metadata'])['name'] };
}

async function exchange(base: string, path: string, watch: boolean): Promise<Seen> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 15_000);
  try {
    const res = await request(`${base}${path}`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent, signal: ac.signal });
    const streaming = watch && res.statusCode === 200 && !String(res.headers['content-type']).startsWith('application/json;') && res.headers['transfer-encoding'] === 'chunked';
    if (streaming || (watch && res.statusCode === 200)) {
      let buf = '';
      for await (const chunk of res.body) {
        buf += (chunk as Buffer).toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          ac.abort();
          return { status: res.statusCode, summary: eventSummary(buf.slice(0, nl)) };
        }
      }
      return { status: res.statusCode, summary: buf === '' ? { empty: true } : eventSummary(buf) };
    }
    return { status: res.statusCode, summary: bodySummary(res.statusCode, await res.body.text()) };
  } catch (err) {
    return { status: -1, summary: { error: String(err) } };
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

/**
 * A watch whose timeoutSeconds overflows Go's time.Duration has a deadline in the past: the
 * apiserver itself then writes the ERROR "context deadline exceeded" event or nothing, at random
 * (the handler races the deadline). Either is the same answer.
 */
function comparable(summary: unknown): unknown {
  const o = rec(rec(summary)['object']);
  return rec(summary)['type'] === 'ERROR' && o['message'] === 'context deadline exceeded' ? { empty: true } : summary;
}

/**
 * A watch from an old resourceVersion: the apiserver of a fresh test cluster still holds every event
 * since etcd was empty and replays them, the proxy's history starts when its cache did and it
 * answers 410 Expired, as the apiserver does once its own window has moved on. Not an input matter.
 */
function windowDependent(path: string, d: unknown, p: unknown): boolean {
  const rv = new URLSearchParams(path.slice(path.indexOf('?') + 1)).get('resourceVersion');
  const po = rec(rec(p)['object']);
  return rv !== null && /^[1-9][0-9]{0,5}$/.test(rv) && rec(d)['type'] === 'ADDED'
    && rec(p)['type'] === 'ERROR' && po['code'] === 410 && String(po['message']).startsWith('too old resource version');
}

async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  }));
}

async function servedFromCache(): Promise<number> {
  const text = await (await request(`${proxy.metricsUrl}/metrics`)).body.text();
  let n = 0;
  for (const l of text.split('\n')) if (l.startsWith('kube_cache_proxy_cache_served_total{')) n += Number(l.slice(l.lastIndexOf(' ') + 1));
  return n;
}

test('bad and borderline read parameters: the proxy answers exactly as the apiserver does', async (t) => {
  // A continue token of the apiserver's for another resource, and one of the proxy's for pods.
  const apiPage = await call(cluster, direct(), '/api/v1/namespaces?limit=1');
  const apiContinue = String(rec(rec(apiPage.json())['metadata'])['continue'] ?? '');
  const proxyPage = await call(cluster, proxy.url, `/api/v1/namespaces/${NS}/pods?limit=1`);
  const proxyContinue = String(rec(rec(proxyPage.json())['metadata'])['continue'] ?? '');
  assert.ok(apiContinue !== '' && proxyContinue !== '', 'continue tokens to reuse');

  const targets: Array<{ path: string; watch: boolean }> = [
    { path: `/api/v1/namespaces/${NS}/configmaps`, watch: false },
    { path: '/api/v1/pods', watch: false },
    { path: `/api/v1/namespaces/${NS}/pods`, watch: true },
    { path: `/api/v1/namespaces/${NS}/configmaps/cm-1`, watch: false },
  ];
  const cases: Array<{ path: string; watch: boolean }> = [];
  for (const query of queries({ apiContinue, proxyContinue })) {
    for (const tg of targets) {
      if (tg.watch) cases.push({ path: `${tg.path}?watch=1&${query}`, watch: true });
      else cases.push({ path: `${tg.path}?${query}`, watch: /(^|&)watch=(?!false|0|&|$)/i.test(query) });
    }
  }
  const servedBefore = await servedFromCache();
  const failures: string[] = [];
  let n = 0;
  let retried = 0;
  let noAnswer = 0;
  const started = Date.now();
  await pool(cases, 6, async (c) => {
    let d: Seen | undefined;
    let p: Seen | undefined;
    // A 200 can race with a change (none is made here), and a timing-dependent answer with its
    // deadline: up to three retries before a difference counts (the retries are reported).
    for (let attempt = 0; attempt < 4; attempt++) {
      if (attempt > 0) retried++;
      [d, p] = await Promise.all([exchange(direct(), c.path, c.watch), exchange(proxy.url, c.path, c.watch)]);
      if (d.status === p.status && JSON.stringify(comparable(d.summary)) === JSON.stringify(comparable(p.summary))) break;
    }
    n++;
    if (!d || !p) return;
    // Neither answered in time (the same error text on both sides): not a comparison, counted apart.
    if (d.status === -1 && p.status === -1) noAnswer++;
    const label = `GET ${c.path.length > 200 ? `${c.path.slice(0, 200)}…` : c.path}`;
    if (p.status >= 500 && d.status < 500) failures.push(`${label}: the proxy answered ${p.status}: ${JSON.stringify(p.summary).slice(0, 300)}`);
    else if (d.status !== p.status) failures.push(`${label}: status ${p.status} through the proxy, ${d.status} direct\n  proxy  ${JSON.stringify(p.summary).slice(0, 400)}\n  direct ${JSON.stringify(d.summary).slice(0, 400)}`);
    else {
      try {
        if (!(c.watch && windowDependent(c.path, d.summary, p.summary))) assert.deepEqual(comparable(p.summary), comparable(d.summary));
      } catch {
        failures.push(`${label}: ${p.status} both, bodies differ\n  proxy  ${JSON.stringify(p.summary).slice(0, 400)}\n  direct ${JSON.stringify(d.summary).slice(0, 400)}`);
      }
    }
  });
  const served = (await servedFromCache()) - servedBefore;
  t.diagnostic(`${n} cases in ${Date.now() - started} ms, ${served} answered from the cache, ${failures.length} differences, ${retried} retries, ${noAnswer} with no answer from either`);
  assert.ok(served > 100, `only ${served} of the reads came from the cache: the test does not reach it`);
  assert.deepEqual(failures, []);
  const ok = await call(cluster, proxy.url, `/api/v1/namespaces/${NS}/configmaps?resourceVersion=0`);
  assert.equal(ok.status, 200, 'the proxy still serves');
});
