// Pass-through of one request to an apiserver: query string untouched, bodies streamed both ways,
// watch chunks written to the client as they arrive, errors answered as Kubernetes Status.
import { requestHasBody, type ClientRequest, type ClientResponse } from './client-http.js';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { clientResponseHeaders, upstreamRequestHeaders, type RequestHeaderEdits } from './headers.js';
import { resolveForwarding } from './client-identity.js';
import { forwardingEdits } from './forwarding-edits.js';
import { sendStatus } from './status.js';
import type { ProxyContext } from './context.js';
import { isLongRunning } from './long-running.js';
import { normalizeTarget } from './request-target.js';
import type { RequestInfo } from './request-info.js';
import { resolveRequestInfo } from './request-info.js';
import { upstreamErrorReason } from './upstream-errors.js';
import { UpstreamFailure } from './upstream.js';
import { cacheCandidate, serveFromCache } from './cache-reads.js';
import { serveWatchFromCache } from './cache-watch.js';
import type { Source } from './metrics.js';
import { admit, flowAttributes, TOO_MANY_REQUESTS } from './flow-gate.js';
import { jsonAnswerRefusal, wantsPretty } from './content-negotiation.js';
import type { Admission, Ticket } from '../flowcontrol/flow-control.js';
import { drained, onClientStall, waitingForDrain } from './client-stall.js';

export { forwardedFor, forwardingEdits } from './forwarding-edits.js';

function hasBody(req: ClientRequest): boolean {
  return requestHasBody(req);
}

/**
 * The apiserver may answer before it has read the whole request body (413 past its 3 MiB limit) or
 * the forward may fail half-way through it. The rest of the body is then still on the client's
 * connection, which cannot carry another request: answer with `Connection: close` and close it
 * after the response, as Go's server does, instead of leaving a kept-alive connection that hangs.
 */
function closeIfBodyLeft(req: ClientRequest, res: ClientResponse): void {
  if (hasBody(req) && !req.readableEnded) res.shouldKeepAlive = false;
}

/**
 * `Expect: 100-continue` (curl sends it with bodies over 1 MB) was answered by Node's server, which
 * sends the 100 Continue itself; it is not passed on (undici refuses it, and the body is coming anyway).
 */
function withoutExpect(edits: RequestHeaderEdits): RequestHeaderEdits {
  return { ...edits, drop: new Set([...(edits.drop ?? []), 'expect']) };
}

export async function forwardRequest(req: ClientRequest, res: ClientResponse, ctx: ProxyContext): Promise<void> {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  // Absolute-form targets are served by their path, as kube-apiserver serves them.
  const targetValid = normalizeTarget(req);
  const url = req.url ?? '/';
  const info = resolveRequestInfo(method, url);
  const longRunning = isLongRunning(info);
  let bytes = 0;
  let user: string | undefined;

  const finish = (code: number, source: Source = 'upstream') => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    ctx.metrics.observeRequest(info, code, source, longRunning ? undefined : seconds);
    ctx.log.info({
      method, path: info.path, verb: info.verb, resource: info.resource, userAgent: req.headers['user-agent'],
      user, status: code, latencyMs: Math.round(seconds * 1e4) / 10, bytes, source,
    }, 'request');
  };

  if (!targetValid || !url.startsWith('/')) {
    sendStatus(res, 400, 'BadRequest', targetValid ? 'the request target must be an absolute path' : 'invalid request target');
    finish(400);
    return;
  }
  const f = resolveForwarding(req, ctx.clientCerts);
  if (f.kind === 'reject') {
    sendStatus(res, f.code, f.reason, f.message);
    finish(f.code);
    return;
  }
  if (f.kind === 'impersonate') user = f.user;

  const cache = ctx.cache;
  const cached = cache ? cacheCandidate(cache, method, info) : undefined;
  /** Waits for flow control: the ticket (undefined when flow control is off), or false once a refusal or a client gone is answered. */
  const admitted = async (pending: Admission | Promise<Admission> | undefined, source: Source): Promise<Ticket | undefined | false> => {
    const a = pending instanceof Promise ? await pending : pending;
    if (a?.admitted && res.destroyed) {
      // The client left while its request waited in a queue.
      a.release();
      finish(499, source);
      return false;
    }
    if (a === undefined || a.admitted) return a;
    closeIfBodyLeft(req, res);
    sendStatus(res, 429, 'TooManyRequests', TOO_MANY_REQUESTS, { retryAfterSeconds: a.retryAfterSeconds });
    finish(429, source);
    return false;
  };
  // A read the cache will answer is admitted as such (the apiserver sees only its probe); one that
  // falls back to the apiserver after all exchanges that admission for one as what it then costs,
  // charged once: the tokens its flow paid on arrival stand, it is not counted as admitted twice.
  const toCache = cached !== undefined && (cached.reflector.synced || info.query.has('continue')) &&
    !(info.verb === 'get' && info.query.get('resourceVersion')?.[0] !== '0') && !info.queryLossy &&
    jsonAnswerRefusal(req.headersDistinct['accept']?.[0]) === undefined && !wantsPretty(req.headers['user-agent']);
  let ticket = await admitted(admit(ctx.flowControl, () => flowAttributes(req, info, f, longRunning, toCache ? 'cache' : 'apiserver', cached)), toCache ? 'cache' : 'upstream');
  if (ticket === false) return;
  // A short request whose response waits on its client's reading for over a second is not
  // executing: its seat goes back (client-stall.ts), once; the finally's release is then a no-op.
  // Watches hold no seats (a watch slot, kept for their life).
  let seatGiven = false;
  const seatBackOnStall = (t: Ticket | undefined): (() => void) => t && !longRunning
    ? onClientStall(res, () => {
      seatGiven = true;
      t.release();
    })
    : () => {};
  let offStall = seatBackOnStall(ticket);
  if (cache && cached) {
    const entry = { longRunning: false, endCleanly() {}, destroy: () => res.destroy() };
    ctx.inflight.add(entry);
    ctx.metrics.inflight(longRunning, 1);
    let done = false;
    try {
      const outcome = info.verb === 'watch'
        ? await serveWatchFromCache(req, res, info, cached, f, { ...ctx, cache })
        : await serveFromCache(req, res, info, cached, f, { ...ctx, cache });
      if (outcome.served) {
        done = true;
        bytes = outcome.bytes;
        finish(outcome.code, 'cache');
        return;
      }
      cache.metrics.fallback(cached.name, info.verb, outcome.reason);
    } catch (err) {
      ctx.log.error({ err: String(err), path: info.path }, 'serving from the cache failed');
      cache.metrics.fallback(cached.name, info.verb, 'error');
      if (res.headersSent) {
        done = true;
        res.destroy();
        finish(500, 'cache');
        return;
      }
    } finally {
      // A fallback keeps its ticket: exchanged below for the apiserver (or kept when admitted as that).
      offStall();
      if (done) ticket?.release();
      ctx.inflight.delete(entry);
      ctx.metrics.inflight(longRunning, -1);
    }
    // A fallback happens before any byte of the answer is written, so before any stall: a seat
    // already given back is not exchanged (the ticket refuses that) but cannot occur here.
    if (toCache && ticket && !seatGiven) {
      ticket = await admitted(ticket.exchange(flowAttributes(req, info, f, longRunning, 'apiserver', cached)), 'upstream');
      if (ticket === false) return;
      offStall = seatBackOnStall(ticket);
    }
  }

  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  res.on('close', onClientGone);

  let upstreamBody: Readable | undefined;
  let ended = false;
  let ageTimer: NodeJS.Timeout | undefined;
  const entry = {
    longRunning,
    endCleanly() {
      if (ended) return;
      ended = true;
      upstreamBody?.destroy();
      if (res.headersSent) res.end();
      else sendStatus(res, 503, 'ServiceUnavailable', 'kube-cache-proxy is shutting down', { retryAfterSeconds: 1 });
    },
    destroy() {
      upstreamBody?.destroy();
      res.destroy();
    },
  };
  ctx.inflight.add(entry);
  ctx.metrics.inflight(longRunning, 1);
  try {
    let up: Dispatcher.ResponseData;
    try {
      // Reads (and watch establishment) that get no answer go to another apiserver; writes only
      // when they provably never left (upstream.ts). A body already being read cannot be resent.
      const withBody = hasBody(req);
      up = (await ctx.upstreams.request({
        identity: f.kind === 'impersonate',
        kind: longRunning ? 'long' : 'short',
        retry: method === 'GET' || method === 'HEAD' ? 'idempotent' : 'unsent',
        resendable: () => !withBody || !req.readableDidRead,
        request: {
          path: url,
          method: method as Dispatcher.HttpMethod,
          headers: upstreamRequestHeaders(req.rawHeaders, withoutExpect(forwardingEdits(req, f, ctx))),
          body: withBody ? req : null,
          signal: abort.signal,
        },
      })).response;
    } catch (err) {
      const upstream = err instanceof UpstreamFailure ? err.backend.origin.host : undefined;
      if (err instanceof UpstreamFailure) err = err.cause;
      if (res.destroyed || ended) {
        finish(499);
        return;
      }
      const reason = upstreamErrorReason(err);
      ctx.metrics.upstreamError(reason);
      ctx.log.warn({ method, path: info.path, upstream, reason, err: String(err) }, 'upstream request failed');
      const requestBodyBroken = reason === 'client_body';
      closeIfBodyLeft(req, res);
      if (requestBodyBroken) sendStatus(res, 400, 'BadRequest', 'the request body could not be read');
      else sendStatus(res, 503, 'ServiceUnavailable', `kube-cache-proxy: apiserver ${upstream ?? ''} unavailable: ${reason}`, { retryAfterSeconds: 1 });
      finish(requestBodyBroken ? 400 : 503);
      return;
    }
    upstreamBody = up.body;
    if (ended) {
      up.body.destroy();
      finish(503);
      return;
    }
    closeIfBodyLeft(req, res);
    res.writeHead(up.statusCode, clientResponseHeaders(up.headers));
    if (longRunning) res.flushHeaders();
    // A forwarded watch ends cleanly after its maximum age: the client re-watches from its last
    // resourceVersion and lands on the apiserver that is best now (watches the cache serves need
    // no such age: they are not tied to an apiserver).
    const maxAge = info.verb === 'watch' && up.statusCode === 200 ? ctx.reshuffle?.forwardedWatchMaxAgeMs() ?? 0 : 0;
    if (maxAge > 0) {
      ageTimer = setTimeout(() => {
        ctx.reshuffle?.recycled('forwarded_watch_max_age');
        entry.endCleanly();
      }, maxAge);
      ageTimer.unref();
    }
    await pump(up.body, res, (n) => { bytes += n; }, () => ended);
    finish(up.statusCode);
  } finally {
    clearTimeout(ageTimer);
    offStall();
    ticket?.release();
    res.off('close', onClientGone);
    ctx.inflight.delete(entry);
    ctx.metrics.inflight(longRunning, -1);
  }
}

/** Copies the upstream body to the client with backpressure; resolves when either side is done. */
function pump(body: Readable, res: ClientResponse, count: (n: number) => void, endedCleanly: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      body.off('data', onData);
      res.off('drain', onDrain);
      drained(res);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      count(chunk.length);
      if (!res.write(chunk)) {
        body.pause();
        waitingForDrain(res);
      }
    };
    const onDrain = () => {
      drained(res);
      body.resume();
    };
    body.on('data', onData);
    res.on('drain', onDrain);
    body.once('end', () => {
      res.end();
      finish();
    });
    body.once('error', () => {
      // The apiserver's connection broke mid-body, or we destroyed it to end a watch cleanly.
      if (!endedCleanly()) res.destroy();
      finish();
    });
    body.once('close', () => {
      if (!endedCleanly() && !res.writableEnded) res.destroy();
      finish();
    });
    res.once('close', () => {
      body.destroy();
      finish();
    });
  });
}

export type { RequestInfo };
