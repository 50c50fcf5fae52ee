// Pass-through of one request to an apiserver: query string untouched, bodies streamed both ways,
// watch chunks written to the client as they arrive, errors answered as Kubernetes Status.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { impersonationHeaders, resolveForwarding, type Forwarding } from './client-identity.js';
import { sendStatus } from './status.js';
import type { ProxyContext } from './context.js';
import { isLongRunning } from './long-running.js';
import type { RequestInfo } from './request-info.js';
import { resolveRequestInfo } from './request-info.js';
import { upstreamErrorReason } from './upstream-errors.js';

export function forwardedFor(req: IncomingMessage): readonly [string, string] {
  const prior = req.headers['x-forwarded-for'];
  const addr = req.socket.remoteAddress ?? '';
  return ['X-Forwarded-For', prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${addr}` : addr];
}

/** Header edits for a request forwarded as `f`: impersonation replaces the client's credentials. */
export function forwardingEdits(req: IncomingMessage, f: Forwarding, ctx: ProxyContext): { drop?: ReadonlySet<string>; add: Array<readonly [string, string]> } {
  const add: Array<readonly [string, string]> = [forwardedFor(req)];
  if (f.kind !== 'impersonate') return { drop: new Set(['x-forwarded-for']), add };
  const auth = ctx.upstreams.credentials.authorization();
  if (auth) add.push(['Authorization', auth]);
  add.push(...impersonationHeaders(f));
  return { drop: new Set(['authorization', 'x-forwarded-for']), add };
}

function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

export async function forwardRequest(req: IncomingMessage, res: ServerResponse, ctx: ProxyContext): Promise<void> {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const info = resolveRequestInfo(method, url);
  const longRunning = isLongRunning(info);
  let bytes = 0;
  let user: string | undefined;

  const finish = (code: number) => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    ctx.metrics.observeRequest(info, code, 'upstream', longRunning ? undefined : seconds);
    ctx.log.info({
      method, path: info.path, verb: info.verb, resource: info.resource, userAgent: req.headers['user-agent'],
      user, status: code, latencyMs: Math.round(seconds * 1e4) / 10, bytes, source: 'upstream',
    }, 'request');
  };

  if (!url.startsWith('/')) {
    sendStatus(res, 400, 'BadRequest', 'the request target must be an absolute path');
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

  const target = ctx.upstreams.pick();
  const dispatcher = f.kind === 'impersonate' ? target.identity : target.passthrough;
  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  res.on('close', onClientGone);

  let upstreamBody: Readable | undefined;
  let ended = false;
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
      up = await dispatcher.request({
        origin: target.origin,
        path: url,
        method: method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(req.rawHeaders, forwardingEdits(req, f, ctx)),
        body: hasBody(req) ? req : null,
        signal: abort.signal,
      });
    } catch (err) {
      if (res.destroyed || ended) {
        finish(499);
        return;
      }
      const reason = upstreamErrorReason(err);
      ctx.metrics.upstreamError(reason);
      ctx.log.warn({ method, path: info.path, upstream: target.origin.host, reason, err: String(err) }, 'upstream request failed');
      const requestBodyBroken = reason === 'client_body';
      if (requestBodyBroken) sendStatus(res, 400, 'BadRequest', 'the request body could not be read');
      else sendStatus(res, 503, 'ServiceUnavailable', `kube-cache-proxy: apiserver ${target.origin.host} unavailable: ${reason}`, { retryAfterSeconds: 1 });
      finish(requestBodyBroken ? 400 : 503);
      return;
    }
    upstreamBody = up.body;
    if (ended) {
      up.body.destroy();
      finish(503);
      return;
    }
    res.writeHead(up.statusCode, clientResponseHeaders(up.headers));
    if (longRunning) res.flushHeaders();
    await pump(up.body, res, (n) => { bytes += n; }, () => ended);
    finish(up.statusCode);
  } finally {
    res.off('close', onClientGone);
    ctx.inflight.delete(entry);
    ctx.metrics.inflight(longRunning, -1);
  }
}

/** Copies the upstream body to the client with backpressure; resolves when either side is done. */
function pump(body: Readable, res: ServerResponse, count: (n: number) => void, endedCleanly: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      body.off('data', onData);
      res.off('drain', onDrain);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      count(chunk.length);
      if (!res.write(chunk)) body.pause();
    };
    const onDrain = () => body.resume();
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
