// HTTP upgrades (exec, attach, port-forward over SPDY/3.1 or WebSocket): the request head is
// rewritten like any forwarded request and then bytes are spliced both ways. Whatever the apiserver
// answers (101, or an error Status) reaches the client unchanged. `Connection: close` travels with
// the upgrade so that a refused upgrade ends the connection instead of leaving a raw tunnel open.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { upstreamRequestHeaders } from './headers.js';
import { resolveForwarding } from './client-identity.js';
import { rawStatusResponse } from './status.js';
import { forwardingEdits } from './forward.js';
import type { ProxyContext } from './context.js';
import { resolveRequestInfo } from './request-info.js';
import { normalizeTarget } from './request-target.js';
import { upstreamErrorReason } from './upstream-errors.js';
import { admit, flowAttributes, TOO_MANY_REQUESTS } from './flow-gate.js';

/** TCP and TLS handshake with the apiserver, as undici's default connect timeout on the forward path. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The response Node is still writing on this connection for an earlier request, if any. */
function pendingResponse(socket: Duplex): ServerResponse | undefined {
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  return current && !current.writableFinished && !current.destroyed ? current : undefined;
}

/**
 * HTTP/1.1 pipelining: an upgrade sent behind a request whose response is still being written
 * (Node hands the socket over at once) waits for that response, as Go's server only reads the
 * next request then; otherwise the 101 would overtake it and that response would land in the tunnel.
 */
function afterPendingResponses(socket: Duplex, then: () => void): void {
  const current = pendingResponse(socket);
  if (!current || socket.destroyed) {
    then();
    return;
  }
  const next = () => {
    current.off('finish', next);
    current.off('close', next);
    setImmediate(() => afterPendingResponses(socket, then));
  };
  current.once('finish', next);
  current.once('close', next);
}

export function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ProxyContext): void {
  socket.on('error', () => socket.destroy());
  afterPendingResponses(socket, () => {
    // The client went away while an earlier response was still being written.
    if (socket.destroyed) return;
    splice(req, socket, head, ctx).catch((err: unknown) => {
      ctx.log.error({ err: String(err) }, 'upgrade failed');
      socket.destroy();
    });
  });
}

async function splice(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ProxyContext): Promise<void> {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  const targetValid = normalizeTarget(req);
  const url = req.url ?? '/';
  const info = resolveRequestInfo(method, url);
  let status = 0;
  let bytesDown = 0;
  let logged = false;
  const log = () => {
    if (logged) return;
    logged = true;
    ctx.metrics.upgrade(status);
    ctx.metrics.observeRequest(info, status, 'upstream', undefined);
    ctx.log.info({
      method, path: info.path, verb: info.verb, resource: info.resource, subresource: info.subresource,
      userAgent: req.headers['user-agent'], upgrade: req.headers.upgrade, status, bytes: bytesDown,
      latencyMs: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10, source: 'upstream',
    }, 'request');
  };

  const refuse = (code: number, reason: string, message: string, retry?: number) => {
    status = code;
    socket.end(rawStatusResponse(code, reason, message, retry ? { retryAfterSeconds: retry } : undefined));
    log();
  };
  if (!targetValid || !url.startsWith('/')) return refuse(400, 'BadRequest', targetValid ? 'the request target must be an absolute path' : 'invalid request target');
  // As the forward path answers requests arriving during shutdown; a tunnel opened now would be cut at once.
  if (ctx.inflight.draining) return refuse(503, 'ServiceUnavailable', 'kube-cache-proxy is shutting down', 1);
  const f = resolveForwarding(req, ctx.clientCerts);
  if (f.kind === 'reject') return refuse(f.code, f.reason, f.message);
  const pending = admit(ctx.flowControl, () => flowAttributes(req, info, f, true, 'apiserver', undefined));
  const admission = pending instanceof Promise ? await pending : pending;
  if (admission && !admission.admitted) return refuse(429, 'TooManyRequests', TOO_MANY_REQUESTS, admission.retryAfterSeconds);
  if (socket.destroyed) {
    admission?.release();
    return;
  }

  const target = ctx.upstreams.pick('long');
  if (!target) return refuse(503, 'ServiceUnavailable', 'kube-cache-proxy: no apiserver available', 1);
  const edits = forwardingEdits(req, f, ctx);
  const headers = upstreamRequestHeaders(req.rawHeaders, { ...edits, keepUpgrade: true });
  // The bytes after the head go upstream as the client framed them (Node leaves a chunked body
  // undecoded in `head`), so the framing header goes with them.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if ((req.rawHeaders[i] ?? '').toLowerCase() === 'transfer-encoding') headers.push(req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '');
  }
  let headText = `${method} ${url} HTTP/1.1\r\nHost: ${target.origin.host}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] ?? '';
    const value = name.toLowerCase() === 'connection' ? 'Upgrade, close' : headers[i + 1] ?? '';
    headText += `${name}: ${value}\r\n`;
  }
  headText += '\r\n';

  const upstream: TLSSocket = connect(target.connectOptions(f.kind === 'impersonate'));
  upstream.once('close', ctx.upstreams.hold(target, 'long'));
  const connectTimer = setTimeout(() => {
    upstream.destroy(Object.assign(new Error(`connecting to ${target.origin.host} timed out`), { code: 'ETIMEDOUT' }));
  }, CONNECT_TIMEOUT_MS);
  connectTimer.unref();
  const entry = {
    longRunning: true,
    endCleanly() {
      upstream.end();
      socket.end();
    },
    destroy() {
      upstream.destroy();
      socket.destroy();
    },
  };
  ctx.inflight.add(entry);
  ctx.metrics.upgradesActive(1);
  let closed = 0;
  const onClose = () => {
    if (++closed < 2) return;
    admission?.release();
    ctx.inflight.delete(entry);
    ctx.metrics.upgradesActive(-1);
    log();
  };
  upstream.once('close', onClose);
  socket.once('close', onClose);
  upstream.once('close', () => clearTimeout(connectTimer));
  // Until the apiserver connection is up, what the client sends is read and kept for it, so that a
  // client hanging up meanwhile is noticed at once (as Go's server notices it) and the upgrade is
  // dropped instead of being sent for nobody. Past 1 MiB the client waits.
  const early: Buffer[] = head.length > 0 ? [head] : [];
  let earlyBytes = head.length;
  const onEarlyData = (chunk: Buffer) => {
    early.push(chunk);
    earlyBytes += chunk.length;
    if (earlyBytes > 1 << 20) socket.pause();
  };
  const onEarlyEnd = () => {
    if (socket.writableEnded) return; // already answered (a refusal): the close follows
    upstream.destroy();
    socket.destroy();
  };
  socket.on('data', onEarlyData);
  socket.once('end', onEarlyEnd);
  upstream.once('secureConnect', () => {
    clearTimeout(connectTimer);
    socket.off('data', onEarlyData);
    socket.off('end', onEarlyEnd);
    upstream.write(headText);
    for (const chunk of early) upstream.write(chunk);
    early.length = 0;
    // The status line, for metrics and the log, may arrive in more than one piece.
    let statusLine = '';
    const onStatus = (chunk: Buffer) => {
      statusLine += chunk.subarray(0, 16 - statusLine.length).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(statusLine);
      if (m || statusLine.length >= 16 || statusLine.includes('\n')) {
        status = m ? Number(m[1]) : 0;
        upstream.off('data', onStatus);
      }
    };
    upstream.on('data', onStatus);
    upstream.on('data', (chunk: Buffer) => { bytesDown += chunk.length; });
    upstream.pipe(socket, { end: false });
    socket.pipe(upstream);
  });
  // Until the apiserver has sent a byte, the client has had no answer: it gets a Status from the
  // proxy, as on the forward path, rather than a connection closed on it without a word.
  const unavailable = (reason: string, err: unknown) => {
    ctx.metrics.upstreamError(reason);
    ctx.log.warn({ method, path: info.path, upstream: target.origin.host, reason, err: String(err) }, 'upstream upgrade failed');
    refuse(503, 'ServiceUnavailable', `kube-cache-proxy: apiserver ${target.origin.host} unavailable: ${reason}`, 1);
  };
  upstream.once('end', () => {
    if (bytesDown === 0 && !socket.destroyed && !socket.writableEnded) unavailable('connection_reset', 'the apiserver closed the connection without answering');
    else socket.end();
  });
  upstream.on('error', (err) => {
    if (bytesDown === 0 && !socket.destroyed && !socket.writableEnded) unavailable(upstreamErrorReason(err), err);
    else socket.destroy();
    upstream.destroy();
  });
  socket.once('close', () => upstream.destroy());
  upstream.once('close', () => { if (!socket.destroyed) socket.end(); });
}
