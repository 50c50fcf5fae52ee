// WATCH answered from the cache: the HTTP side. A probe sent upstream with the client's own
// credentials authorizes the watch as a watch (same path, same selectors). For a watch that starts
// from the current state with resourceVersion unset, the probe is a consistent watch-list whose
// label selector additionally matches nothing: it ends at once with a bookmark at the apiserver's
// current resourceVersion, the freshness target. Other watches are probed by a plain watch from the
// cache's resourceVersion, which the apiserver's watch cache answers without a quorum read. Then the
// client's events come from the cache's watcher, written as they arrive.
import type { ClientRequest, ClientResponse } from './client-http.js';
import type { Dispatcher } from 'undici';
import type { RequestInfo } from './request-info.js';
import type { ProxyContext } from './context.js';
import type { Forwarding } from './client-identity.js';
import { forwardingEdits } from './forwarding-edits.js';
import { upstreamRequestHeaders } from './headers.js';
import { jsonAnswerRefusal } from './content-negotiation.js';
import { parseResourceVersion } from '../cache/resource-version.js';
import { LineSplitter } from '../cache/line-splitter.js';
import { watchEventObject, topLevelMember } from '../cache/json-scan.js';
import { parseJsonWithheld } from '../cache/json-error.js';
import { eventLine } from '../cache/watch-encoding.js';
import { statusBody } from './status.js';
import type { CachedResource, ResourceCache } from '../cache/resource-cache.js';
import { planWatch } from '../cache/watch-options.js';
import type { Watcher } from '../cache/watcher.js';
import type { CacheOutcome } from './cache-reads.js';
import { localRead } from './local-reads.js';

const NOTHING = 'kube-cache-proxy.invalid/none=none';
/**
 * How long the consistent watch-list probe may take to send its bookmark (the apiserver's own wait
 * for its cache is at most 3 s). After the bookmark it idles until this timeout, holding its
 * upstream connection, which is then reused.
 */
const PROBE_TIMEOUT_SECONDS = 4;
const WRITE_BATCH = 256 * 1024;

const forward = (reason: string): CacheOutcome => ({ served: false, reason });
const first = (info: RequestInfo, k: string): string | undefined => info.query.get(k)?.[0];

type Probe = { kind: 'allowed'; rv: bigint | undefined } | { kind: 'reply'; status: number; headers: Record<string, string | string[] | undefined>; body: Buffer } | { kind: 'fail'; reason: string };

/**
 * `fromRV`: the watch needs no freshness target, so a plain watch from the cache's resourceVersion
 * (served by the apiserver's watch cache, no quorum read) authorizes it: its 200 is the answer.
 */
async function probeWatch(req: ClientRequest, info: RequestInfo, f: Forwarding, ctx: ProxyContext, fromRV: bigint | undefined): Promise<Probe> {
  const url = req.url ?? '/';
  const path = url.split('?', 1)[0] ?? url;
  const labels = first(info, 'labelSelector');
  const q = fromRV !== undefined
    ? new URLSearchParams({ watch: '1', resourceVersion: fromRV.toString(), timeoutSeconds: '1' })
    : new URLSearchParams({ watch: '1', sendInitialEvents: 'true', allowWatchBookmarks: 'true', resourceVersionMatch: 'NotOlderThan', timeoutSeconds: String(PROBE_TIMEOUT_SECONDS) });
  if (fromRV !== undefined) {
    if (labels) q.set('labelSelector', labels);
  } else {
    q.set('labelSelector', labels ? `${labels},${NOTHING}` : NOTHING);
  }
  const fields = first(info, 'fieldSelector');
  if (fields) q.set('fieldSelector', fields);
  const edits = forwardingEdits(req, f, ctx);
  const headers = upstreamRequestHeaders(req.rawHeaders, { ...edits, drop: new Set([...(edits.drop ?? []), 'accept', 'accept-encoding']), add: [...edits.add, ['Accept', 'application/json']] });
  const abort = new AbortController();
  let up: Dispatcher.ResponseData;
  try {
    up = (await ctx.upstreams.request({ identity: f.kind === 'impersonate', kind: 'short', retry: 'idempotent', request: { path: `${path}?${q.toString()}`, method: 'GET', headers, signal: abort.signal } })).response;
  } catch {
    return { kind: 'fail', reason: 'probe_failed' };
  }
  let answered = false;
  try {
    if (up.statusCode === 401 || up.statusCode === 403) {
      const chunks: Buffer[] = [];
      for await (const c of up.body) chunks.push(c as Buffer);
      return { kind: 'reply', status: up.statusCode, headers: up.headers, body: Buffer.concat(chunks) };
    }
    if (up.statusCode !== 200) return { kind: 'fail', reason: `probe_${up.statusCode}` };
    answered = true;
    if (fromRV !== undefined) return { kind: 'allowed', rv: undefined };
    const lines = new LineSplitter();
    for await (const chunk of up.body) {
      for (const line of lines.push(chunk as Buffer)) {
        const obj = watchEventObject(line);
        const meta: unknown = parseJsonWithheld(topLevelMember(obj, 'metadata')?.toString('utf8') ?? 'null');
        const rv = typeof meta === 'object' && meta !== null && 'resourceVersion' in meta ? parseResourceVersion(meta.resourceVersion) : undefined;
        if (line.toString('latin1', 0, 20).startsWith('{"type":"BOOKMARK"')) return { kind: 'allowed', rv };
        if (line.toString('latin1', 0, 20).startsWith('{"type":"ERROR"')) return { kind: 'fail', reason: 'probe_error' };
      }
    }
    return { kind: 'fail', reason: 'probe_no_bookmark' };
  } catch {
    answered = false;
    return { kind: 'fail', reason: 'probe_failed' };
  } finally {
    if (answered) drainProbe(up.body, abort, PROBE_TIMEOUT_SECONDS);
    else abort.abort();
  }
}

/**
 * A probe that answered 200 ends by itself within its timeoutSeconds (it matches nothing, or only
 * events after the cache's resourceVersion, which are few). Aborting it would close its keep-alive
 * connection, so every watch would cost a new TCP and TLS handshake with the apiserver; it is read
 * to its end instead, and the connection goes back to the pool. Cut only if it overstays.
 */
function drainProbe(body: Dispatcher.ResponseData['body'], abort: AbortController, timeoutSeconds: number): void {
  const timer = setTimeout(() => abort.abort(), (timeoutSeconds + 5) * 1000);
  timer.unref();
  const done = () => clearTimeout(timer);
  body.on('end', done).on('error', done).on('close', done).resume();
}

export async function serveWatchFromCache(req: ClientRequest, res: ClientResponse, info: RequestInfo, cr: CachedResource, f: Forwarding, ctx: ProxyContext & { cache: ResourceCache }): Promise<CacheOutcome> {
  if (info.queryLossy) return forward('unparsed_query');
  const refusal = jsonAnswerRefusal(req.headers.accept);
  if (refusal) return forward(refusal);
  const plan = planWatch(info.query, { namespace: info.namespace, namedPath: info.parts.length > 1 }, cr.reflector.fieldSet);
  if (typeof plan === 'string') return forward(plan);
  if (!cr.reflector.synced) return forward('not_synced');
  // Out of touch with the apiservers: no new watch from a store that may be far behind.
  if (cr.reflector.stale) return forward('stale');
  let target: bigint | undefined;
  const local = ctx.localAccess ? await localRead(req, res, info, f, ctx.localAccess, plan.waitFor === 'probe' ? cr.freshness : undefined) : undefined;
  if (local?.kind === 'done') return local.outcome;
  if (local?.kind === 'forward') return forward(local.reason);
  if (local?.kind === 'allowed') target = plan.waitFor === 'probe' ? local.rv : plan.waitFor;
  else {
    const p = await probeWatch(req, info, f, ctx, plan.waitFor === 'probe' ? undefined : cr.reflector.resourceVersion);
    if (p.kind === 'fail') return forward(p.reason);
    if (p.kind === 'reply') {
      res.writeHead(p.status, Object.fromEntries(Object.entries(p.headers).filter((e): e is [string, string | string[]] => e[1] !== undefined && !['connection', 'keep-alive', 'transfer-encoding'].includes(e[0]))));
      res.end(p.body);
      return { served: true, code: p.status, bytes: p.body.length };
    }
    target = plan.waitFor === 'probe' ? p.rv : plan.waitFor;
  }
  // A watch from the current state is never served without a freshness target.
  if (plan.waitFor === 'probe' && target === undefined) return forward('no_freshness_target');
  if (target !== undefined && !(await cr.reflector.waitFor(target, ctx.cache.config.freshnessBudgetMs))) return forward('rv_wait_timeout');
  const start = cr.watch.watch({ ...plan.request, timeoutMs: plan.timeoutMs });
  if (start.kind === 'not_ready') return forward('watch_not_ready');
  ctx.cache.metrics.served(cr.name, 'watch', start.index);
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
  res.flushHeaders();
  if (start.kind === 'expired') {
    const rv = first(info, 'resourceVersion') ?? '';
    const status = statusBody(410, 'Expired', `too old resource version: ${rv} (${start.oldest})`).trimEnd();
    res.end(eventLine('ERROR', Buffer.from(status)));
    return { served: true, code: 200, bytes: 0 };
  }
  const bytes = await pumpWatcher(start.watcher, res, ctx);
  return { served: true, code: 200, bytes };
}

async function pumpWatcher(w: Watcher, res: ClientResponse, ctx: ProxyContext): Promise<number> {
  let bytes = 0;
  // Ending cleanly writes the final chunk now, before a shutdown with no grace cuts the connection.
  const entry = {
    longRunning: true,
    endCleanly: () => {
      w.close('shutdown');
      if (!res.writableEnded) res.end();
    },
    destroy: () => {
      w.close('shutdown');
      res.destroy();
    },
  };
  ctx.inflight.add(entry);
  // A watcher closed as too slow has its connection (HTTP/1.1) or stream (HTTP/2) cut at once: its
  // client is not reading, and a clean end would wait behind the bytes it does not take, holding
  // the socket and its buffers for as long as the client stays.
  w.onClosed((reason) => {
    if (reason === 'slow' && !res.destroyed) res.destroy();
  });
  const onClose = () => w.close('client');
  res.on('close', onClose);
  // The client may have left while the watch waited for its probe or for the cache: 'close' has
  // been emitted already, and the watcher would otherwise stay, collecting events nobody reads.
  if (res.destroyed || !res.socket || res.socket.destroyed) w.close('client');
  try {
    while (!w.closed) {
      const lines = w.take(WRITE_BATCH);
      if (!lines) {
        await w.ready();
        continue;
      }
      const chunk = lines.length === 1 ? (lines[0] as Buffer) : Buffer.concat(lines);
      bytes += chunk.length;
      if (!res.write(chunk)) await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  } finally {
    res.off('close', onClose);
    ctx.inflight.delete(entry);
    if (!res.destroyed && !res.writableEnded) res.end();
  }
  return bytes;
}
