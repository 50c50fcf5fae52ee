// LIST and GET answered from the cache: the HTTP side. The freshness probe (the same LIST with
// limit=1, sent upstream with the client's own credentials) both authorizes the read — a 401/403 is
// returned exactly as the apiserver wrote it — and gives the resourceVersion a consistent read must
// reach. Every "no" forwards the original request.
import { randomUUID } from 'node:crypto';
import type { ClientRequest, ClientResponse } from './client-http.js';
import { createGunzip, createGzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RequestInfo } from './request-info.js';
import type { ProxyContext } from './context.js';
import type { Forwarding } from './client-identity.js';
import { forwardingEdits } from './forwarding-edits.js';
import { upstreamRequestHeaders } from './headers.js';
import { sendStatus } from './status.js';
import { acceptsGzip, jsonAnswerRefusal, wantsPretty } from './content-negotiation.js';
import { isForward, parseListOptions } from '../cache/list-options.js';
import { listScope, readList, readObject } from '../cache/reads.js';
import { gzipListBody, gzipListBodySize, listBodySize, objectBody, type BodyType, type ListMeta } from '../cache/list-body.js';
import type { StoredObject } from '../cache/stored-object.js';
import { readBody } from '../cache/upstream.js';
import { topLevelMember } from '../cache/json-scan.js';
import { parseResourceVersion } from '../cache/resource-version.js';
import type { CachedResource, ResourceCache } from '../cache/resource-cache.js';
import type { AuthorizationCache } from './authorization-cache.js';
import { localRead } from './local-reads.js';
import { drained, waitingForDrain } from './client-stall.js';

export type CacheOutcome =
  | { readonly served: true; readonly code: number; readonly bytes: number }
  | { readonly served: false; readonly reason: string };

const GZIP_MIN_BYTES = 128 * 1024;
/**
 * Chunk and buffer size of the zlib stream between a list and its client: one TLS record. Node's
 * default stream buffer (64 KiB since Node 22) lets the zlib stream hold several 64 KiB buffers per
 * client that has stopped reading an inflated list; with 16 KiB, 1,000 such clients held 238 instead
 * of 306 MiB of buffers (heap snapshot; the rest is the socket's and TLS's own, one chunk each).
 */
const ZLIB_STREAM = { chunkSize: 16 * 1024, highWaterMark: 16 * 1024 } as const;
/** Response headers of the probe worth passing on: the apiserver's audit id and APF classification. */
const PROBE_HEADERS = ['audit-id', 'x-kubernetes-pf-flowschema-uid', 'x-kubernetes-pf-prioritylevel-uid'];

type Probe =
  | { readonly kind: 'rv'; readonly rv: bigint; readonly headers: Record<string, string> }
  | { readonly kind: 'reply'; readonly status: number; readonly headers: Record<string, string | string[] | undefined>; readonly body: Buffer }
  | { readonly kind: 'fail'; readonly reason: string };

const forward = (reason: string): CacheOutcome => ({ served: false, reason });

/** Reads the cache may answer: GET of a collection or object of a cached resource, no subresource. */
export function cacheCandidate(cache: ResourceCache, method: string, info: RequestInfo): CachedResource | undefined {
  if (method !== 'GET' || !info.isResourceRequest || info.subresource !== '' || (info.verb !== 'list' && info.verb !== 'get' && info.verb !== 'watch')) return undefined;
  return cache.lookup(info.apiGroup, info.apiVersion, info.resource);
}

type CacheContext = ProxyContext & { readonly cache: ResourceCache; readonly authorization: AuthorizationCache };

export async function serveFromCache(req: ClientRequest, res: ClientResponse, info: RequestInfo, cr: CachedResource, f: Forwarding, ctx: CacheContext): Promise<CacheOutcome> {
  if (info.queryLossy) return forward('unparsed_query');
  // Go's Header.Get: the first of several header lines (Node would join them).
  const refusal = jsonAnswerRefusal(req.headersDistinct['accept']?.[0]);
  if (refusal) return forward(refusal);
  if (wantsPretty(req.headers['user-agent'])) return forward('pretty');
  if (info.verb === 'get') return serveGet(req, res, info, cr, f, ctx);

  const opts = parseListOptions(info.query, cr.reflector.fieldSet);
  if (isForward(opts)) return forward(opts.forward);
  if (!cr.reflector.synced && opts.continueToken === undefined) return forward('not_synced');
  // Out of touch with the apiservers: any state it holds may be far behind (cache/watch-health.ts).
  if (opts.mode.kind === 'any' && cr.reflector.stale) return forward('stale');
  const namespace = info.namespace || undefined;
  // resourceVersion=0 needs no freshness proof: a remembered authorization may stand in for the probe.
  const authzKey = opts.mode.kind === 'any' ? ctx.authorization.key(req, info, f) : undefined;
  let probed: { rv: bigint | undefined; headers: Record<string, string> } = { rv: undefined, headers: {} };
  const needsTarget = opts.mode.kind === 'consistent' && opts.continueToken === undefined;
  const local = ctx.localAccess ? await localRead(req, res, info, f, ctx.localAccess, needsTarget ? cr.freshness : undefined) : undefined;
  if (local?.kind === 'done') return local.outcome;
  if (local?.kind === 'forward') return forward(local.reason);
  // Judged here: the answer carries an Audit-Id of its own, as every apiserver answer does.
  if (local?.kind === 'allowed') probed = { rv: local.rv, headers: { 'audit-id': randomUUID() } };
  else if (!ctx.authorization.allowed(authzKey)) {
    const p = await probe(req, info, f, ctx, true, opts.mode.kind === 'consistent');
    if (p.kind === 'fail') {
      // Only this proxy can read its continue tokens: forwarded, the apiserver's answer would be a
      // 400 "invalid continue token", which pagers do not retry. The apiserver is what failed.
      if (opts.continueToken !== undefined) {
        sendStatus(res, 503, 'ServiceUnavailable', `kube-cache-proxy: the apiserver could not authorize the next page (${p.reason})`, { retryAfterSeconds: 1 });
        return { served: true, code: 503, bytes: 0 };
      }
      return forward(p.reason);
    }
    if (p.kind === 'reply') return writeReply(res, p);
    ctx.authorization.remember(authzKey);
    probed = p;
  }
  // A consistent read is never served without a freshness target.
  if (needsTarget && probed.rv === undefined) return forward('no_freshness_target');
  const scope = listScope(cr, namespace, info.query.get('labelSelector')?.[0] ?? '', info.query.get('fieldSelector')?.[0] ?? '');
  const answer = await readList(ctx.cache, cr, opts, namespace, scope, probed.rv);
  if (answer.kind === 'forward') return forward(answer.reason);
  if (answer.kind === 'expired') {
    sendStatus(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
    return { served: true, code: 410, bytes: 0 };
  }
  const { page } = answer;
  const meta = { resourceVersion: page.resourceVersion, continueToken: page.continueToken, remainingItemCount: page.remainingItemCount };
  const bytes = await writeList(req, res, probed.headers, cr.body, meta, page.items);
  return { served: true, code: 200, bytes };
}

async function serveGet(req: ClientRequest, res: ClientResponse, info: RequestInfo, cr: CachedResource, f: Forwarding, ctx: CacheContext): Promise<CacheOutcome> {
  // GET with resourceVersion unset is a quorum read: the probe would cost as much as the GET.
  for (const k of info.query.keys()) if (k !== 'resourceVersion') return forward(k === 'pretty' ? 'pretty' : 'unknown_parameter');
  const rv = info.query.get('resourceVersion')?.[0];
  if (rv !== '0') return forward(rv === undefined || rv === '' ? 'get_consistent' : 'get_rv');
  if (!cr.reflector.synced) return forward('not_synced');
  if (cr.reflector.stale) return forward('stale');
  const authzKey = ctx.authorization.key(req, info, f);
  let headers: Record<string, string> = {};
  const local = ctx.localAccess ? await localRead(req, res, info, f, ctx.localAccess, undefined) : undefined;
  if (local?.kind === 'done') return local.outcome;
  if (local?.kind === 'forward') return forward(local.reason);
  if (local?.kind === 'allowed') headers = { 'audit-id': randomUUID() };
  else if (!ctx.authorization.allowed(authzKey)) {
    const p = await probe(req, info, f, ctx, false);
    if (p.kind === 'fail') return forward(p.reason);
    if (p.kind === 'reply') return writeReply(res, p);
    ctx.authorization.remember(authzKey);
    headers = p.headers;
  }
  const answer = readObject(ctx.cache, cr, info.namespace, info.name);
  if (answer.kind === 'forward') return forward(answer.reason);
  if (answer.kind === 'notFound') {
    const t = cr.reflector.type;
    const what = t.group ? `${t.resource}.${t.group}` : t.resource;
    sendStatus(res, 404, 'NotFound', `${what} ${JSON.stringify(info.name)} not found`, { name: info.name, ...(t.group ? { group: t.group } : {}), kind: t.resource });
    return { served: true, code: 404, bytes: 0 };
  }
  const body = objectBody(cr.body, answer.object);
  const bytes = await writeChunks(req, res, headers, [body], body.length);
  return { served: true, code: 200, bytes };
}

/** The authorization (and, for lists, freshness) probe, with the client's credentials. */
async function probe(req: ClientRequest, info: RequestInfo, f: Forwarding, ctx: ProxyContext, list: boolean, consistent = false): Promise<Probe> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  // Keep the client's own encoding of the selectors; drop what would change the probe's meaning.
  const keep = list ? (k: string) => k === 'labelSelector' || k === 'fieldSelector' : (k: string) => k === 'resourceVersion';
  const pairs = (q < 0 ? '' : url.slice(q + 1)).split('&').filter((pair) => {
    const key = decodeURIComponent(pair.split('=', 1)[0] ?? '');
    return keep(key);
  });
  // A consistent probe (resourceVersion unset) costs the apiserver a quorum read, which is what gives
  // R. Reads that need no R are authorized by a probe the apiserver's watch cache answers alone:
  // "not older than 1" with limit=1 (resourceVersion=0 would ignore the limit and list everything).
  if (list) pairs.push(...(consistent ? ['limit=1'] : ['resourceVersion=1', 'resourceVersionMatch=NotOlderThan', 'limit=1']));
  const edits = forwardingEdits(req, f, ctx);
  const headers = upstreamRequestHeaders(req.rawHeaders, { ...edits, drop: new Set([...(edits.drop ?? []), 'accept', 'accept-encoding', 'content-length', 'content-type']), add: [...edits.add, ['Accept', 'application/json']] });
  let up: Dispatcher.ResponseData;
  try {
    up = (await ctx.upstreams.request({ identity: f.kind === 'impersonate', kind: 'short', retry: 'idempotent', request: { path: `${path}?${pairs.join('&')}`, method: 'GET', headers } })).response;
  } catch {
    return { kind: 'fail', reason: 'probe_failed' };
  }
  const body = await readBody(up.body, 64 << 20).catch(() => undefined);
  if (!body) return { kind: 'fail', reason: 'probe_failed' };
  // 401/403 are the answer to the read itself; for a GET the probe is the very request, so any
  // answer but 200 is.
  if (up.statusCode === 401 || up.statusCode === 403 || (!list && up.statusCode !== 200)) return { kind: 'reply', status: up.statusCode, headers: up.headers, body };
  if (up.statusCode !== 200) return { kind: 'fail', reason: `probe_${up.statusCode}` };
  const pass: Record<string, string> = {};
  for (const h of PROBE_HEADERS) {
    const v = up.headers[h];
    if (typeof v === 'string') pass[h] = v;
  }
  if (!list) return { kind: 'rv', rv: 0n, headers: pass };
  let rv: bigint | undefined;
  try {
    const meta: unknown = JSON.parse(topLevelMember(body, 'metadata')?.toString('utf8') ?? 'null');
    if (typeof meta === 'object' && meta !== null && 'resourceVersion' in meta) rv = parseResourceVersion(meta.resourceVersion);
  } catch {
    rv = undefined;
  }
  return rv === undefined ? { kind: 'fail', reason: 'probe_no_rv' } : { kind: 'rv', rv, headers: pass };
}

function writeReply(res: ClientResponse, p: Extract<Probe, { kind: 'reply' }>): CacheOutcome {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(p.headers)) {
    if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') headers[k] = v;
  }
  headers['content-length'] = String(p.body.length);
  res.writeHead(p.status, headers);
  res.end(p.body);
  return { served: true, code: p.status, bytes: p.body.length };
}

/**
 * A list from the stored gzip members (cache/list-body.ts): concatenated as they are when the
 * client takes gzip and the body is larger than the apiserver's threshold (it compresses a body of
 * more than 128 KiB); otherwise inflated on the way out, in zlib's thread pool. No compression per
 * request, and nothing of either on the event loop.
 */
async function writeList(req: ClientRequest, res: ClientResponse, extra: Record<string, string>, t: BodyType, meta: ListMeta, items: readonly StoredObject[]): Promise<number> {
  const size = listBodySize(t, meta, items);
  const gzip = size > GZIP_MIN_BYTES && acceptsGzip(req.headersDistinct['accept-encoding']?.[0]);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-cache, private', ...extra };
  if (gzip) {
    headers['content-encoding'] = 'gzip';
    headers['vary'] = 'Accept-Encoding';
    headers['content-length'] = String(gzipListBodySize(t, meta, items));
  } else {
    headers['content-length'] = String(size);
  }
  res.writeHead(200, headers);
  await writeBody(res, gzipListBody(t, meta, items), gzip ? undefined : createGunzip(ZLIB_STREAM));
  return size;
}

/**
 * Writes the body with backpressure, gzip (level 1, off the event loop) when the client takes it and
 * the body is larger than the apiserver's threshold (it compresses a body of more than 128 KiB).
 */
async function writeChunks(req: ClientRequest, res: ClientResponse, extra: Record<string, string>, chunks: Iterable<Buffer>, size: number): Promise<number> {
  const gzip = size > GZIP_MIN_BYTES && acceptsGzip(req.headersDistinct['accept-encoding']?.[0]);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-cache, private', ...extra };
  if (gzip) {
    headers['content-encoding'] = 'gzip';
    headers['vary'] = 'Accept-Encoding';
  }
  res.writeHead(200, headers);
  return writeBody(res, chunks, gzip ? createGzip({ level: 1, ...ZLIB_STREAM }) : undefined);
}

/** Writes `chunks` with backpressure, through `through` (a zlib stream) when given; the bytes taken. */
async function writeBody(res: ClientResponse, chunks: Iterable<Buffer>, through: Transform | undefined): Promise<number> {
  let bytes = 0;
  if (through) {
    through.pipe(res);
    // A client gone mid-body: the zlib stream would otherwise wait for a drain that never comes.
    res.once('close', () => through.destroy());
    through.once('error', () => res.destroy());
  }
  const out: NodeJS.WritableStream = through ?? res;
  for (const chunk of chunks) {
    if (res.destroyed) return bytes;
    bytes += chunk.length;
    if (!out.write(chunk)) {
      // Stalled on the client past CLIENT_STALL_MS: the request's seat goes back (client-stall.ts).
      waitingForDrain(res);
      await eventOrClose(through ?? res, 'drain', res);
      drained(res);
    }
  }
  out.end();
  if (through) {
    // The end of the body is in the zlib stream and the response: waiting for the client too.
    waitingForDrain(res);
    await eventOrClose(res, 'finish', res);
    drained(res);
  }
  return bytes;
}

/**
 * Resolves on `event` of `emitter` or when the response closes, whichever comes first, and removes
 * both listeners (events.once in a loop would leave a 'close' and an 'error' listener per wait).
 */
function eventOrClose(emitter: NodeJS.EventEmitter, event: string, res: ClientResponse): Promise<void> {
  if (res.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      emitter.off(event, done);
      res.off('close', done);
      resolve();
    };
    emitter.once(event, done);
    res.once('close', done);
  });
}
