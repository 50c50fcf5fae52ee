// The proxy's main port: fastify on TLS, every request forwarded to an apiserver (the cache joins
// here in its own issue), upgrades spliced, errors answered as Kubernetes Status.
import fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { forwardRequest } from './forward.js';
import { handleUpgrade } from './upgrade.js';
import { InflightTracker } from './inflight.js';
import { createProxyMetrics } from './metrics.js';
import { sendStatus, statusBody } from './status.js';
import type { UpstreamSet } from './upstream.js';
import type { ProxyContext } from './context.js';
import type { ResourceCache } from '../cache/resource-cache.js';
import { AuthorizationCache } from './authorization-cache.js';
import { CompressedLists } from './compressed-lists.js';
import type { FlowControl } from '../flowcontrol/flow-control.js';

export interface ProxyServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer; readonly clientCa?: string | Buffer | undefined };
  readonly upstreams: UpstreamSet;
  readonly log: Logger;
  readonly registry: Registry;
  readonly cache?: ResourceCache | undefined;
  readonly flowControl?: FlowControl | undefined;
}

export interface ProxyServer {
  readonly port: number;
  readonly url: string;
  readonly draining: boolean;
  /** Stops accepting, ends watches cleanly, lets short requests finish within graceMs. */
  shutdown(graceMs: number): Promise<void>;
}

// Kubernetes StatusReasons only (client-go keys off them); other client errors, 431 and 505
// included, are BadRequest.
const REASONS: Readonly<Record<number, string>> = {
  404: 'NotFound', 405: 'MethodNotAllowed', 408: 'Timeout', 413: 'RequestEntityTooLarge', 415: 'UnsupportedMediaType',
};

function reasonFor(code: number): string {
  return REASONS[code] ?? (code >= 500 ? 'InternalError' : 'BadRequest');
}

function statusReply(code: number, message: string): string {
  return statusBody(code, reasonFor(code), message);
}

/** A whole Status response written straight to a socket that no HTTP response owns (parse errors, CONNECT). */
function rawStatus(code: number, message: string): string {
  const body = statusReply(code, message);
  return `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? 'Error'}\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Node's parser error codes (llhttp HPE_*, plus the server's own timeouts) as the answer the client gets. */
function clientErrorReply(code: string): { code: number; message: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { code: 431, message: 'request header fields too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 408, message: 'the request was not received in time' };
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return { code: 400, message: 'malformed HTTP request: Content-Length together with Transfer-Encoding' };
    default:
      return { code: 400, message: `malformed HTTP request (${code || 'parse error'})` };
  }
}

/**
 * Requests Node's parser lets through but kube-apiserver (Go net/http) refuses before routing: HTTP
 * versions other than 1.0/1.1 (HTTP/0.9 request lines without a version, "HTTP/2.0" in HTTP/1 framing),
 * HTTP/1.1 without Host, several Host headers. Answered here rather than forwarded as if well-formed.
 */
function malformed(req: IncomingMessage): { code: number; message: string } | undefined {
  if (req.httpVersionMajor !== 1) {
    return req.httpVersionMajor === 0
      ? { code: 400, message: 'malformed HTTP request: missing HTTP version' }
      : { code: 505, message: `unsupported protocol version HTTP/${req.httpVersion}` };
  }
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] ?? '').toLowerCase() === 'host') hosts++;
  // RFC 9112 §3.2: 400 for more than one Host (Node keeps the first silently; Go refuses).
  if (hosts > 1) return { code: 400, message: 'too many Host headers' };
  if (hosts === 0 && req.httpVersionMinor === 1) return { code: 400, message: 'missing required Host header' };
  return undefined;
}

/** How long a connection answered for a parse error may stay half-closed, waiting for the client to close. */
const LINGER_MS = 5_000;

/**
 * Writes a whole response to a socket no HTTP response owns and half-closes it. Whatever the client
 * still sends is read and dropped: closing with unread bytes would send a TCP reset, which can make
 * the client lose the answer (a 431 while it is still writing 100 KB of headers). A client that
 * neither reads nor closes does not get to hold the socket beyond LINGER_MS.
 */
function answerAndClose(socket: Duplex, response: string): void {
  socket.on('error', () => socket.destroy());
  socket.resume();
  socket.end(response);
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
}

/** True when a response on this connection has started: raw bytes written now would corrupt it. */
function responseInProgress(socket: Duplex): boolean {
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  return current !== undefined && current !== null && current.headersSent;
}

/**
 * The listen backlog as Go's net package (and so kube-apiserver) sets it: the kernel's somaxconn,
 * not Node's 511. When thousands of clients connect at once (kubelets after a partition), a short
 * accept queue drops their SYNs and they come back only after TCP's retransmission backoff (1, 3,
 * 7, 15 s …), long after the proxy could have served them.
 */
function listenBacklog(): number {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? Math.min(n, 65535) : 4096;
  } catch {
    return 4096;
  }
}

export async function startProxyServer(o: ProxyServerOptions): Promise<ProxyServer> {
  const ctx: ProxyContext = {
    upstreams: o.upstreams,
    clientCerts: o.tls.clientCa !== undefined,
    log: o.log,
    metrics: createProxyMetrics(o.registry),
    inflight: new InflightTracker(),
    cache: o.cache,
    compressedLists: new CompressedLists({ maxBytes: 256 * 1024 * 1024, ttlSeconds: 60 }),
    authorization: new AuthorizationCache({ ttlSeconds: o.cache?.config.authorizationTtlSeconds ?? 0, max: 100_000 }),
    flowControl: o.flowControl,
  };
  const answered = new WeakSet<Duplex>();
  /** Every HTTP request: refused here when malformed or while shutting down, else forwarded. */
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const bad = malformed(req);
    if (bad) {
      res.shouldKeepAlive = false;
      sendStatus(res, bad.code, reasonFor(bad.code), bad.message);
      return;
    }
    if (ctx.inflight.draining) {
      res.shouldKeepAlive = false;
      sendStatus(res, 503, 'ServiceUnavailable', 'kube-cache-proxy is shutting down', { retryAfterSeconds: 1 });
      return;
    }
    try {
      await forwardRequest(req, res, ctx);
    } catch (err) {
      o.log.error({ err: String(err) }, 'forwarding failed');
      sendStatus(res, 500, 'InternalError', 'kube-cache-proxy: internal error');
    }
  };
  const app: FastifyInstance = fastify({
    https: {
      cert: o.tls.cert,
      key: o.tls.key,
      // HTTP/1.1 without Host is refused by serve(), as a Status (Node's own 400 has no body).
      requireHostHeader: false,
      ...(o.tls.clientCa !== undefined ? { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    },
    logger: false,
    // Requests arriving while shutting down get a Status 503 from serve(), not fastify's own body.
    return503OnClosing: false,
    keepAliveTimeout: 65_000,
    frameworkErrors(err, request, reply) {
      // A path the router cannot percent-decode ('%zz', '%c3%28'): the apiserver decides (400 for
      // the first, 404 for the second; the proxy subresource passes such paths on).
      if (err.code === 'FST_ERR_BAD_URL') {
        reply.hijack();
        void serve(request.raw, reply.raw);
        return;
      }
      const code = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 400;
      o.log.debug({ err: err.message, code }, 'request refused by the router');
      sendStatus(reply.raw, code, reasonFor(code), err.message);
    },
    // Requests Node's HTTP parser rejects (garbage, smuggling attempts, oversized headers, header
    // timeouts): a Status body and a closed connection. Nothing is written when a response on the
    // connection has already started (a watch followed by garbage), as that would corrupt it. The
    // parser reports every later chunk of the same connection as an error again: ignored.
    clientErrorHandler(err, socket) {
      if (answered.has(socket)) return;
      const errCode = typeof err.code === 'string' ? err.code : '';
      if (errCode === 'ECONNRESET' || socket.destroyed || !socket.writable || responseInProgress(socket)) {
        socket.destroy();
        return;
      }
      answered.add(socket);
      const reply = clientErrorReply(errCode);
      o.log.debug({ err: err.message, code: reply.code }, 'malformed request');
      answerAndClose(socket, rawStatus(reply.code, reply.message));
    },
  }) as unknown as FastifyInstance;

  // Requests are taken over in the first hook, before fastify looks at a body: it would refuse
  // Content-Types it cannot parse (415 for an empty one, which the apiserver takes as JSON) and
  // QUERY without one. Bodies are streamed to the apiserver untouched, without a size limit here.
  app.addHook('onRequest', async (request, reply) => {
    reply.hijack();
    await serve(request.raw, reply.raw);
  });
  // Not reached (the hook answers everything); kept so that nothing falls back to fastify's defaults.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    o.log.warn({ err: err.message, code }, 'request error');
    reply.code(code).type('application/json').send(statusReply(code, err.message));
  });
  const handler = async (request: { raw: IncomingMessage }, reply: { hijack(): void; raw: ServerResponse }) => {
    reply.hijack();
    await serve(request.raw, reply.raw);
  };
  app.all('*', handler);
  app.setNotFoundHandler(handler);

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const bad = malformed(req);
    if (bad) {
      answerAndClose(socket, rawStatus(bad.code, bad.message));
      return;
    }
    try {
      handleUpgrade(req, socket, head, ctx);
    } catch (err) {
      o.log.error({ err: String(err) }, 'upgrade failed');
      socket.destroy();
    }
  });
  // HTTP CONNECT (tunnelling) is not something kube-apiserver offers; without a listener Node would
  // drop the connection without a word. Never spliced: the tunnel could outlive the answer.
  app.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const url = req.url ?? '';
    answerAndClose(socket, url.startsWith('/')
      ? rawStatus(405, 'the server does not allow this method on the requested resource')
      : rawStatus(400, 'the request target must be an absolute path'));
  });
  // "Expect:" other than 100-continue: 417, as a Status (Node's own 417 has no body).
  app.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    res.shouldKeepAlive = false;
    sendStatus(res, 417, 'BadRequest', 'unsupported Expect header');
  });
  app.server.headersTimeout = 60_000;
  app.server.requestTimeout = 0;

  await app.listen({ host: o.host, port: o.port, backlog: listenBacklog() });
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    port: addr.port,
    url: `https://${host}:${addr.port}`,
    get draining() {
      return ctx.inflight.draining;
    },
    shutdown(graceMs: number) {
      closing ??= (async () => {
        const closed = app.close();
        await ctx.inflight.drain(graceMs);
        app.server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
