// Large bodies, long lists and long watches through the proxy, compared with the same requests sent
// straight to the apiserver: the bytes are the same, the proxy streams (no buffering), and watch
// events are flushed to the client as they happen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gunzipSync } from 'node:zlib';
import { Agent, request, type Dispatcher } from 'undici';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call, closeAgents, type Reply } from '../helpers/http.js';

const cluster = sharedCluster();
let proxy: TestProxy;
let agent: Agent;
const namespaces: string[] = [];
before(async () => {
  proxy = await startTestProxy(cluster);
  agent = new Agent({ connect: { ca: readFileSync(cluster.info.caFile) } });
});
after(async () => {
  for (const ns of namespaces) await call(cluster, direct(), `/api/v1/namespaces/${ns}`, { method: 'DELETE' });
  await proxy.stop();
  await agent.close();
  await closeAgents();
});

const direct = () => cluster.info.apiservers[0]?.url ?? '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const adminAuth = () => ({ authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` });

async function freshNamespace(prefix: string): Promise<string> {
  const ns = `${prefix}-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;
  const r = await call(cluster, direct(), '/api/v1/namespaces', {
    method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }),
  });
  assert.equal(r.status, 201, r.text());
  namespaces.push(ns);
  return ns;
}

function ok(r: Reply, status: number, what: string): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text().slice(0, 500)}`);
}

function obj(v: unknown): Record<string, unknown> {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `not an object: ${JSON.stringify(v)?.slice(0, 200)}`);
  return v as Record<string, unknown>;
}

interface ListBody {
  readonly metadata: Record<string, unknown>;
  readonly items: Array<Record<string, unknown>>;
}

function listBody(r: Reply): ListBody {
  const b = obj(r.json());
  const items = b['items'];
  assert.ok(Array.isArray(items), 'list without items');
  return { metadata: obj(b['metadata']), items: items.map(obj) };
}

const meta = (item: Record<string, unknown>) => obj(item['metadata']);
const nameOf = (item: Record<string, unknown>) => String(meta(item)['name']);
const rvOf = (item: Record<string, unknown>) => String(meta(item)['resourceVersion']);

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    for (let item = items[next++]; item !== undefined; item = items[next++]) await fn(item);
  }));
}

/** A GET whose body is hashed as it streams in (never held whole). */
async function streamedGet(base: string, path: string): Promise<{ status: number; bytes: number; sha256: string }> {
  const res = await request(`${base}${path}`, { headers: adminAuth(), dispatcher: agent });
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of res.body) {
    const b = chunk as Buffer;
    bytes += b.length;
    h.update(b);
  }
  return { status: res.statusCode, bytes, sha256: h.digest('hex') };
}

/** A POST with node:https, which (unlike undici) can send `Expect: 100-continue` and wait for the 100. */
function httpsPost(base: string, path: string, body: string, o: { expectContinue?: boolean; chunked?: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(body);
    const req = httpsRequest(`${base}${path}`, {
      method: 'POST',
      ca: readFileSync(cluster.info.caFile),
      agent: false,
      headers: {
        ...adminAuth(),
        'content-type': 'application/json',
        ...(o.expectContinue ? { expect: '100-continue' } : {}),
        ...(o.chunked ? {} : { 'content-length': String(data.length) }),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const send = () => {
      for (let off = 0; off < data.length; off += 64 * 1024) req.write(data.subarray(off, off + 64 * 1024));
      req.end();
    };
    if (o.expectContinue) req.once('continue', send);
    else send();
  });
}

let gcFn: (() => void) | undefined;
function gc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Heap plus Buffer memory of this process (the proxy under test runs in it), after collecting garbage. */
async function liveMemory(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

test('large ConfigMaps: bodies streamed both ways, byte-identical, no buffering in the proxy', async (t) => {
  const ns = await freshNamespace('big');
  // kube-apiserver caps a ConfigMap at 1 MiB of data (and a request body at 3 MiB), so "5 MB" is five
  // ConfigMaps of 1,000,000 random bytes each (1.33 MB of base64 in every request and response).
  const blobs = Array.from({ length: 5 }, () => randomBytes(1_000_000));
  for (const [i, blob] of blobs.entries()) {
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `big-${i}` }, binaryData: { blob: blob.toString('base64') } });
    ok(await call(cluster, proxy.url, `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body }), 201, `create big-${i} through the proxy`);
  }
  for (const [i, blob] of blobs.entries()) {
    const path = `/api/v1/namespaces/${ns}/configmaps/big-${i}`;
    const [p, d] = [await call(cluster, proxy.url, path), await call(cluster, direct(), path)];
    ok(p, 200, `get big-${i} through the proxy`);
    assert.ok(p.body.equals(d.body), `big-${i}: proxied and direct bodies differ`);
    const data = obj(obj(p.json())['binaryData']);
    assert.ok(Buffer.from(String(data['blob']), 'base64').equals(blob), `big-${i}: data changed on the way`);
  }
  // The whole namespace in one response (~6.7 MB), pinned to one resourceVersion (the list's own
  // resourceVersion moves with writes anywhere in the cluster, e.g. the apiserver's lease).
  const rv = String(obj(obj((await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps?limit=1`)).json())['metadata'])['resourceVersion']);
  const listPath = `/api/v1/namespaces/${ns}/configmaps?resourceVersion=${rv}&resourceVersionMatch=Exact`;
  const [pl, dl] = [await streamedGet(proxy.url, listPath), await streamedGet(direct(), listPath)];
  assert.equal(pl.status, 200);
  assert.ok(pl.bytes > 6_500_000, `list is only ${pl.bytes} bytes`);
  assert.deepEqual(pl, dl);

  // Bodies sent the way curl sends them: `Expect: 100-continue` (curl's default past 1 MB), and chunked.
  for (const [i, o] of [{ expectContinue: true }, { chunked: true }, { expectContinue: true, chunked: true }].entries()) {
    const blob = randomBytes(900_000);
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `curl-like-${i}` }, binaryData: { blob: blob.toString('base64') } });
    const r = await httpsPost(proxy.url, `/api/v1/namespaces/${ns}/configmaps`, body, o);
    assert.equal(r.status, 201, `${JSON.stringify(o)}: ${r.status} ${r.body.slice(0, 300)}`);
    const back = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps/curl-like-${i}`);
    assert.ok(Buffer.from(String(obj(obj(back.json())['binaryData'])['blob']), 'base64').equals(blob));
    ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps/curl-like-${i}`, { method: 'DELETE' }), 200, 'delete');
  }

  // One 5 MB ConfigMap: the apiserver refuses the body (413 past 3 MiB) and the proxy, which streams
  // the body rather than reading it first, relays the same answer.
  const huge = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, binaryData: { blob: randomBytes(5_000_000).toString('base64') } });
  const hd = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body: huge('huge') });
  const hp = await call(cluster, proxy.url, `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body: huge('huge') });
  assert.equal(hp.status, hd.status, `5 MB create: proxied ${hp.status} ${hp.text()} vs direct ${hd.status} ${hd.text()}`);
  assert.equal(hp.text(), hd.text());
  assert.equal(hp.headers['content-type'], hd.headers['content-type']);
  // If the proxy had not read the whole body when the apiserver answered, the rest is still on the
  // client's connection: the proxy must close it (as the apiserver does, with `Connection: close`)
  // so that the client's next request is answered at once instead of hanging on that connection.
  const next = await Promise.race([call(cluster, proxy.url, `/api/v1/namespaces/${ns}/configmaps/big-0`), sleep(5000).then(() => undefined)]);
  assert.equal(next?.status, 200, 'the request after the refused 5 MB body did not complete within 5 s');

  // Slow readers: twenty clients request the 6.7 MB list through the proxy and read nothing for a while.
  // A proxy that buffers (or ignores backpressure) holds most of 134 MB (65 MB measured with the
  // pause on backpressure removed, the rest sits in kernel socket buffers); a streaming one holds a
  // few socket buffers (~6 MB measured). Then each reader drains its response and gets the right bytes.
  const baseline = await liveMemory();
  const readers = await Promise.all(Array.from({ length: 20 }, () => request(`${proxy.url}${listPath}`, { headers: adminAuth(), dispatcher: agent })));
  await sleep(3000);
  const growth = await liveMemory() - baseline;
  const hashes = await Promise.all(readers.map(async (res: Dispatcher.ResponseData) => {
    const h = createHash('sha256');
    for await (const chunk of res.body) h.update(chunk as Buffer);
    return h.digest('hex');
  }));
  for (const h of hashes) assert.equal(h, dl.sha256);
  t.diagnostic(`memory growth with 20 stalled readers: ${(growth / 1048576).toFixed(1)} MB`);
  assert.ok(growth < 30 * 1024 * 1024, `memory grew by ${(growth / 1048576).toFixed(1)} MB with 20 stalled readers of a ${(pl.bytes / 1048576).toFixed(1)} MB list`);
});

test('2,000 ConfigMaps: LIST and limit=500 pages through the proxy equal the apiserver\'s', async (t) => {
  const ns = await freshNamespace('many');
  const names = Array.from({ length: 2000 }, (_, i) => `cm-${String(i).padStart(4, '0')}`);
  const started = Date.now();
  await pool(names, 32, async (name) => {
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { batch: String(Number(name.slice(3)) % 7) } }, data: { name, v: randomBytes(32).toString('hex') } });
    ok(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body }), 201, `create ${name}`);
  });
  t.diagnostic(`created 2000 ConfigMaps in ${Date.now() - started} ms`);
  const path = `/api/v1/namespaces/${ns}/configmaps`;

  // Full LIST: same items (other test files may write elsewhere, so the list's own RV may differ).
  const p = await call(cluster, proxy.url, path);
  const d = await call(cluster, direct(), path);
  ok(p, 200, 'list through the proxy');
  const pItems = listBody(p).items;
  const dItems = listBody(d).items;
  assert.equal(pItems.length, 2000);
  assert.deepEqual(pItems.map(nameOf), names);
  assert.deepEqual(pItems.map(rvOf), dItems.map(rvOf));
  assert.deepEqual(pItems.map((i) => JSON.stringify(i)), dItems.map((i) => JSON.stringify(i)));

  // Pinned to one resourceVersion the LIST is deterministic: byte-identical.
  const rv = String(listBody(d).metadata['resourceVersion']);
  const exact = `${path}?resourceVersion=${rv}&resourceVersionMatch=Exact`;
  const [pe, de] = [await call(cluster, proxy.url, exact), await call(cluster, direct(), exact)];
  ok(pe, 200, 'exact list through the proxy');
  assert.ok(pe.body.equals(de.body), 'resourceVersionMatch=Exact list: bytes differ');

  // Compressed (kubectl and client-go ask for gzip): the apiserver's gzip bytes, passed on as they are.
  const gz = async (base: string) => {
    const res = await request(`${base}${exact}`, { headers: { ...adminAuth(), 'accept-encoding': 'gzip' }, dispatcher: agent });
    return { encoding: res.headers['content-encoding'], body: Buffer.from(await res.body.arrayBuffer()) };
  };
  const [pg, dg] = [await gz(proxy.url), await gz(direct())];
  assert.equal(pg.encoding, 'gzip');
  assert.equal(dg.encoding, 'gzip');
  assert.ok(gunzipSync(pg.body).equals(de.body), 'gzip list: not the list');
  assert.ok(pg.body.equals(dg.body), 'gzip list: bytes differ');

  // limit=500, following the continue tokens. Through the proxy as users run it the pages come from
  // the cache's snapshot with the proxy's own tokens: together they are the apiserver's list.
  // Through a proxy that forwards (cache off) the tokens are the apiserver's: each page fetched with
  // the same token directly is byte-identical (the token pins the resourceVersion).
  const follow = async (base: string, checkDirect: boolean): Promise<Array<Record<string, unknown>>> => {
    const paged: Array<Record<string, unknown>> = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const q = `${path}?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`;
      const pp = await call(cluster, base, q);
      ok(pp, 200, `page ${pages + 1} through the proxy`);
      const pb = listBody(pp);
      if (cont && checkDirect) {
        const dp = await call(cluster, direct(), q);
        assert.ok(pp.body.equals(dp.body), `page ${pages + 1}: bytes differ`);
      }
      assert.ok(pb.items.length <= 500);
      paged.push(...pb.items);
      const c = pb.metadata['continue'];
      cont = typeof c === 'string' && c !== '' ? c : undefined;
      pages++;
    } while (cont && pages < 10);
    assert.equal(pages, 4);
    return paged;
  };
  assert.deepEqual((await follow(proxy.url, false)).map((i) => JSON.stringify(i)), dItems.map((i) => JSON.stringify(i)));
  const forwarding = await startTestProxy(cluster, { cache: undefined });
  try {
    assert.deepEqual((await follow(forwarding.url, true)).map((i) => JSON.stringify(i)), dItems.map((i) => JSON.stringify(i)));
  } finally {
    await forwarding.stop();
  }

  // The first page pinned too: identical bytes, and the same continue token.
  const first = `${path}?limit=500&resourceVersion=${rv}&resourceVersionMatch=Exact`;
  const [pf, df] = [await call(cluster, proxy.url, first), await call(cluster, direct(), first)];
  ok(pf, 200, 'pinned first page');
  assert.ok(pf.body.equals(df.body), 'pinned first page: bytes differ');

  // A label-selected LIST too (the apiserver filters; the proxy passes the query untouched).
  const sel = `${path}?labelSelector=${encodeURIComponent('batch in (3,5)')}&resourceVersion=${rv}&resourceVersionMatch=Exact`;
  const [ps, ds] = [await call(cluster, proxy.url, sel), await call(cluster, direct(), sel)];
  ok(ps, 200, 'selected list');
  assert.ok(ps.body.equals(ds.body), 'label-selected list: bytes differ');
  assert.ok(listBody(ps).items.length > 500);
});

interface WatchEvent {
  readonly at: number;
  readonly line: string;
  readonly type: string;
  readonly name: string;
}

/** Opens a watch and records every event line with the time it arrived. */
async function openWatch(base: string, path: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await request(`${base}${path}`, { headers: { ...adminAuth(), ...headers }, dispatcher: agent, signal: abort.signal });
  const events: WatchEvent[] = [];
  let ended = false;
  let error: unknown;
  const waiters = new Set<() => void>();
  const done = (async () => {
    let pending = '';
    try {
      for await (const chunk of res.body) {
        const now = performance.now();
        pending += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (!line) continue;
          const ev = obj(JSON.parse(line));
          events.push({ at: now, line, type: String(ev['type']), name: String(meta(obj(ev['object']))['name'] ?? '') });
        }
        for (const w of waiters) w();
      }
    } catch (err) {
      error = err;
    } finally {
      ended = true;
      for (const w of waiters) w();
    }
  })();
  return {
    status: res.statusCode,
    headers: res.headers,
    events,
    get ended() { return ended; },
    get error() { return error; },
    /** Resolves with the first event matching `pred`, or rejects after timeoutMs. */
    waitFor(pred: (e: WatchEvent) => boolean, timeoutMs: number): Promise<WatchEvent> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const e = events.find(pred);
          if (e) { cleanup(); resolve(e); } else if (ended) { cleanup(); reject(new Error(`watch ended (${String(error)}); events: ${events.map((x) => `${x.type} ${x.name}`).join(', ')}`)); }
        };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`no matching event within ${timeoutMs} ms; events: ${events.map((x) => `${x.type} ${x.name}`).join(', ')}`)); }, timeoutMs);
        const cleanup = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    async close() { abort.abort(); await done; },
    done,
  };
}

async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const res = await request(`${proxy.metricsUrl}/metrics`);
  const text = await res.body.text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^[^{]+\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const got = new Map((m[1] ?? '').split(',').map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 2, -1)] as const; }));
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) return Number(m[2]);
  }
  return undefined;
}

/** Creates a ConfigMap directly; returns the time the write was sent. */
async function createCm(ns: string, name: string): Promise<number> {
  const sent = performance.now();
  const r = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`, {
    method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { at: new Date().toISOString() } }),
  });
  ok(r, 201, `create ${name}`);
  return sent;
}

test('a watch stays open past 60 s through the proxy and each event is flushed as it happens', async (t) => {
  const ns = await freshNamespace('watch');
  const rv = String(listBody(await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps`)).metadata['resourceVersion']);
  // The response headers come at once (the proxy flushes them), not with the first event.
  const opened = openWatch(proxy.url, `/api/v1/namespaces/${ns}/configmaps?watch=true&allowWatchBookmarks=true&timeoutSeconds=90&resourceVersion=${rv}`);
  const w = await Promise.race([opened, sleep(2000).then(() => undefined)]);
  assert.ok(w, 'no response headers for the watch within 2 s');
  try {
    assert.equal(w.status, 200);
    const t0 = performance.now();
    assert.equal(await metric('kube_cache_proxy_inflight_requests', { kind: 'long_running' }), 1);

    await sleep(5000);
    const wrote1 = await createCm(ns, 'early');
    const e1 = await w.waitFor((e) => e.type === 'ADDED' && e.name === 'early', 2000);
    assert.ok(e1.at - wrote1 < 2000, `early event ${Math.round(e1.at - wrote1)} ms after the write was sent`);

    await sleep(Math.max(0, t0 + 65_000 - performance.now()));
    const wrote2 = await createCm(ns, 'late');
    const e2 = await w.waitFor((e) => e.type === 'ADDED' && e.name === 'late', 2000);
    const lag = e2.at - wrote2;
    assert.ok(lag < 2000, `late event ${Math.round(lag)} ms after the write was sent`);
    await sleep(Math.max(0, t0 + 66_000 - performance.now()));
    assert.equal(w.ended, false, `the watch ended before 66 s: ${String(w.error)}`);
    const types = w.events.map((e) => e.type);
    assert.deepEqual(types.filter((t) => t !== 'BOOKMARK'), ['ADDED', 'ADDED']);
    t.diagnostic(`events arrived ${Math.round(e1.at - wrote1)} ms and ${Math.round(lag)} ms after their writes were sent; ${types.length - 2} bookmark(s) seen`);
  } finally {
    await w.close();
  }
  // The client went away: the proxy ends its upstream watch too.
  let inflight: number | undefined;
  for (let i = 0; i < 40 && (inflight = await metric('kube_cache_proxy_inflight_requests', { kind: 'long_running' })) !== 0; i++) await sleep(50);
  assert.equal(inflight, 0, 'the proxied watch is still in flight after the client left');
});

test('the same watch directly and through the proxy yields the same bytes (JSON and protobuf)', async (t) => {
  const ns = await freshNamespace('wbytes');
  const path = `/api/v1/namespaces/${ns}/configmaps`;
  const rv = String(listBody(await call(cluster, direct(), path)).metadata['resourceVersion']);
  for (let i = 0; i < 5; i++) await createCm(ns, `w-${i}`);
  for (const n of ['w-1', 'w-3']) {
    ok(await call(cluster, direct(), `${path}/${n}`, { method: 'PATCH', body: '{"data":{"patched":"yes"}}', headers: { 'content-type': 'application/merge-patch+json' } }), 200, `patch ${n}`);
  }
  ok(await call(cluster, direct(), `${path}/w-4`, { method: 'DELETE' }), 200, 'delete w-4');

  for (const accept of ['application/json', 'application/vnd.kubernetes.protobuf;stream=watch']) {
    // Both watches replay the same history from `rv` and end on their own after timeoutSeconds.
    const q = `${path}?watch=true&resourceVersion=${rv}&timeoutSeconds=2`;
    const fetchAll = async (base: string) => {
      const res = await request(`${base}${q}`, { headers: { ...adminAuth(), accept }, dispatcher: agent });
      return { status: res.statusCode, type: res.headers['content-type'], body: Buffer.from(await res.body.arrayBuffer()) };
    };
    const [p, d] = await Promise.all([fetchAll(proxy.url), fetchAll(direct())]);
    assert.equal(p.status, 200, accept);
    assert.equal(p.type, d.type, accept);
    assert.ok(p.body.length > 0, accept);
    assert.ok(p.body.equals(d.body), `${accept}: watch bytes differ (${p.body.length} vs ${d.body.length})`);
    if (accept === 'application/json') {
      const lines = p.body.toString('utf8').trim().split('\n');
      assert.deepEqual(lines.map((l) => String(obj(JSON.parse(l))['type'])), ['ADDED', 'ADDED', 'ADDED', 'ADDED', 'ADDED', 'MODIFIED', 'MODIFIED', 'DELETED']);
    }
  }

  // Live events, both watches open at once from the same resourceVersion: the same lines.
  const rv2 = String(listBody(await call(cluster, direct(), path)).metadata['resourceVersion']);
  const q = `${path}?watch=true&resourceVersion=${rv2}&timeoutSeconds=30`;
  const [wp, wd] = await Promise.all([openWatch(proxy.url, q), openWatch(direct(), q)]);
  try {
    for (let i = 0; i < 3; i++) await createCm(ns, `live-${i}`);
    ok(await call(cluster, direct(), `${path}/live-0`, { method: 'DELETE' }), 200, 'delete live-0');
    const last = (e: WatchEvent) => e.type === 'DELETED' && e.name === 'live-0';
    await Promise.all([wp.waitFor(last, 5000), wd.waitFor(last, 5000)]);
    assert.deepEqual(wp.events.map((e) => e.line), wd.events.map((e) => e.line));
    assert.equal(wp.events.length, 4);
  } finally {
    await Promise.all([wp.close(), wd.close()]);
  }
});
