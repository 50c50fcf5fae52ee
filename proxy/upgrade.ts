// HTTP upgrades (exec, attach, port-forward over SPDY/3.1 or WebSocket): the request head is
// rewritten like any forwarded request and then bytes are spliced both ways. Whatever the apiserver
// answers (101, or an error Status) reaches the client unchanged. `Connection: close` travels with
// the upgrade so that a refused upgrade ends the connection instead of leaving a raw tunnel open.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { upstreamRequestHeaders } from './headers.js';
import { resolveForwarding } from './client-identity.js';
import { rawStatusResponse } from './status.js';
import { forwardingEdits } from './forward.js';
import type { ProxyContext } from './context.js';
import { resolveRequestInfo } from './request-info.js';
import { upstreamErrorReason } from './upstream-errors.js';

export function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: ProxyContext): void {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
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
  socket.on('error', () => socket.destroy());

  const refuse = (code: number, reason: string, message: string, retry?: number) => {
    status = code;
    socket.end(rawStatusResponse(code, reason, message, retry ? { retryAfterSeconds: retry } : undefined));
    log();
  };
  if (!url.startsWith('/')) return refuse(400, 'BadRequest', 'the request target must be an absolute path');
  const f = resolveForwarding(req, ctx.clientCerts);
  if (f.kind === 'reject') return refuse(f.code, f.reason, f.message);

  const target = ctx.upstreams.pick();
  const edits = forwardingEdits(req, f, ctx);
  const headers = upstreamRequestHeaders(req.rawHeaders, { ...edits, keepUpgrade: true });
  let headText = `${method} ${url} HTTP/1.1\r\nHost: ${target.origin.host}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] ?? '';
    const value = name.toLowerCase() === 'connection' ? 'Upgrade, close' : headers[i + 1] ?? '';
    headText += `${name}: ${value}\r\n`;
  }
  headText += '\r\n';

  const upstream: TLSSocket = connect(target.connectOptions(f.kind === 'impersonate'));
  let connected = false;
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
    ctx.inflight.delete(entry);
    ctx.metrics.upgradesActive(-1);
    log();
  };
  upstream.once('close', onClose);
  socket.once('close', onClose);
  upstream.once('secureConnect', () => {
    connected = true;
    upstream.write(headText);
    if (head.length > 0) upstream.write(head);
    upstream.once('data', (first: Buffer) => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(first.subarray(0, 16).toString('latin1'));
      status = m ? Number(m[1]) : 0;
    });
    upstream.on('data', (chunk: Buffer) => { bytesDown += chunk.length; });
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on('error', (err) => {
    if (!connected && !socket.destroyed) {
      const reason = upstreamErrorReason(err);
      ctx.metrics.upstreamError(reason);
      ctx.log.warn({ method, path: info.path, upstream: target.origin.host, reason, err: String(err) }, 'upstream upgrade failed');
      refuse(503, 'ServiceUnavailable', `kube-cache-proxy: apiserver ${target.origin.host} unavailable: ${reason}`, 1);
    } else {
      socket.destroy();
    }
    upstream.destroy();
  });
  socket.once('close', () => upstream.destroy());
  upstream.once('close', () => { if (!socket.destroyed) socket.end(); });
}
