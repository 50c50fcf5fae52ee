// The proxy's main port: fastify on TLS, HTTP/2 and HTTP/1.1 (ALPN), every request forwarded to an
// apiserver or answered from the cache, upgrades spliced (HTTP/1.1 only, as kube-apiserver: SPDY
// needs it), errors answered as Kubernetes Status.
import type { TLSSocket } from 'node:tls';
import fastify from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { STATUS_CODES, IncomingMessage, ServerResponse } from 'node:http';
import type { Http2SecureServer, Http2ServerResponse } from 'node:http2';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { forwardRequest } from './forward.js';
import { handleUpgrade } from './upgrade.js';
import { InflightTracker } from './inflight.js';
import { createProxyMetrics } from './metrics.js';
import { sendStatus, statusBody } from './status.js';
import { Http2ClientRequest, Http2ClientResponse, isHttp2, type ClientRequest, type ClientResponse } from './client-http.js';
import { ClientConnections, WATCH_GRACE_MS, type ClientConnection } from './client-connections.js';
import { ConnectionGuard } from './connection-guard.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './connection-limits.js';
import { jitteredMs } from './options.js';
import { resolveRequestInfo } from './request-info.js';
import type { UpstreamSet } from './upstream.js';
import type { ProxyContext, Reshuffle } from './context.js';
import type { ResourceCache } from '../cache/resource-cache.js';
import { AuthorizationCache } from './authorization-cache.js';
import { LocalAccess } from './local-access.js';
import { reviewPoster } from './local-review.js';
import type { FlowControl } from '../flowcontrol/flow-control.js';
import { portTlsOptions, type PortTls } from './tls-options.js';

export interface ProxyServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: PortTls;
  readonly upstreams: UpstreamSet;
  readonly log: Logger;
  readonly registry: Registry;
  readonly cache?: ResourceCache | undefined;
  readonly flowControl?: FlowControl | undefined;
  /** Client connections' maximum age in seconds (0: never), stretched by up to jitter × itself. */
  readonly clientConnections?: { readonly maxAgeSeconds: number; readonly jitter: number; readonly watchGraceMs?: number } | undefined;
  readonly reshuffle?: Reshuffle | undefined;
  /** Caps on client connections and their timeouts (default DEFAULT_CONNECTION_LIMITS). */
  readonly connectionLimits?: ConnectionLimits | undefined;
}

export interface ProxyServer {
  readonly port: number;
  readonly url: string;
  readonly draining: boolean;
  /** New TLS material (rotation) for new handshakes; established connections keep theirs. */
  setTls(tls: PortTls): void;
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
 * HTTP/2 (negotiated by ALPN) has its framing checked by Node's HTTP/2 layer, and :authority for Host.
 */
function malformed(req: ClientRequest): { code: number; message: string } | undefined {
  if (isHttp2(req)) return undefined;
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

/**
 * The request and response fastify hands over: node:http's for HTTP/1.1, the subclasses the server
 * was given for HTTP/2 (fastify types them as its server type's alone).
 */
function exchange(req: unknown, res: unknown): { req: ClientRequest; res: ClientResponse } {
  if ((req instanceof IncomingMessage || req instanceof Http2ClientRequest) && (res instanceof ServerResponse || res instanceof Http2ClientResponse)) return { req, res };
  throw new TypeError('unexpected request or response class');
}

/** A watch (the connection's age ends those cleanly); the URL is parsed only when it may be one. */
function isWatch(req: ClientRequest): boolean {
  const url = req.url ?? '';
  return url.includes('watch') && resolveRequestInfo(req.method ?? 'GET', url).verb === 'watch';
}

/** As many streams as kube-apiserver allows (--http2-max-streams-per-connection's usual 1000): a controller's watches all share one connection. */
const MAX_CONCURRENT_STREAMS = 1000;

function localAccess(o: ProxyServerOptions): LocalAccess | undefined {
  const a = o.cache?.config.authorization;
  if (a?.mode !== 'local') return undefined;
  return new LocalAccess({ post: reviewPoster(o.upstreams), allowedTtlSeconds: a.allowedTtlSeconds, deniedTtlSeconds: a.deniedTtlSeconds, registry: o.registry });
}

export async function startProxyServer(o: ProxyServerOptions): Promise<ProxyServer> {
  const ctx: ProxyContext = {
    upstreams: o.upstreams,
    clientCerts: o.tls.clientCa !== undefined,
    log: o.log,
    metrics: createProxyMetrics(o.registry, o.cache?.config.resources),
    inflight: new InflightTracker(),
    cache: o.cache,
    authorization: new AuthorizationCache({ ttlSeconds: o.cache?.config.authorizationTtlSeconds ?? 0, max: 100_000 }),
    localAccess: localAccess(o),
    flowControl: o.flowControl,
    reshuffle: o.reshuffle,
  };
  const answered = new WeakSet<Duplex>();
  const age = o.clientConnections;
  const connections = new ClientConnections({
    maxAgeMs: () => (age ? jitteredMs(age.maxAgeSeconds, age.jitter) : 0),
    watchGraceMs: age?.watchGraceMs ?? WATCH_GRACE_MS,
    registry: o.registry,
    log: o.log,
  });
  const limits = o.connectionLimits ?? DEFAULT_CONNECTION_LIMITS;
  const guard = new ConnectionGuard({ limits, registry: o.registry, log: o.log });
  /** Per connection, the context whose in-flight tracker tells the connection of its watches. */
  const connectionContexts = new WeakMap<ClientConnection, ProxyContext>();
  const contextFor = (conn: ClientConnection): ProxyContext => {
    let c = connectionContexts.get(conn);
    if (!c) connectionContexts.set(conn, c = { ...ctx, inflight: ctx.inflight.scoped(conn) });
    return c;
  };
  /** Every HTTP request: refused here when malformed or while shutting down, else forwarded. */
  const serve = async (req: ClientRequest, res: ClientResponse): Promise<void> => {
    const conn = connections.forRequest(req, res);
    // Over a connection cap: answered with a Status and closed.
    if (guard.admit(req, res)) return;
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
      await forwardRequest(req, res, conn && isWatch(req) ? contextFor(conn) : ctx);
    } catch (err) {
      o.log.error({ err: String(err) }, 'forwarding failed');
      sendStatus(res, 500, 'InternalError', 'kube-cache-proxy: internal error');
    }
  };
  // HTTP/1.1 without Host is refused by serve(), as a Status (Node's own 400 has no body): Node's
  // HTTP/1 fallback in an HTTP/2 server does not check Host itself (no requireHostHeader there).
  const app = fastify<Http2SecureServer>({
    // HTTP/2 for clients that offer it (client-go, kubectl: all of a client's requests and watches
    // on one connection), HTTP/1.1 for the others and for upgrades, as kube-apiserver offers both.
    http2: true,
    // fastify's session timeout (default 72 s) sends GOAWAY after that long without a frame, also to
    // a connection whose only stream is a quiet watch: off. The guard closes a session idle as Go's
    // HTTP/2 server does: after the idle timeout (65 s) with no stream open (connection-guard.ts).
    http2SessionTimeout: 0,
    https: {
      allowHTTP1: true,
      Http2ServerRequest: Http2ClientRequest,
      // (Typed as its base class: @types/node wants a constructor generic in the request type.)
      Http2ServerResponse: Http2ClientResponse as typeof Http2ServerResponse,
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      ...guard.tlsOptions,
      // nghttp2's budget for a connection's queued frames (default 10 MB): a client's many watches
      // and lists share one connection now, and past the budget new streams would be refused.
      maxSessionMemory: 64,
      // Node 24's HTTP/1 fallback checks Host itself and answers a bodiless 400 before serve()
      // sees the request (Node 20's does not): left to serve(), which answers with a Status.
      // (Not in @types/node's HTTP/2 options, hence the spread.)
      ...{ requireHostHeader: false },
      ...portTlsOptions(o.tls),
    },
    logger: false,
    // Requests arriving while shutting down get a Status 503 from serve(), not fastify's own body.
    return503OnClosing: false,
    frameworkErrors(err, request, reply) {
      // A path the router cannot percent-decode ('%zz', '%c3%28'): the apiserver decides (400 for
      // the first, 404 for the second; the proxy subresource passes such paths on).
      if (err.code === 'FST_ERR_BAD_URL') {
        reply.hijack();
        const x = exchange(request.raw, reply.raw);
        void serve(x.req, x.res);
        return;
      }
      const code = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 400;
      o.log.debug({ err: err.message, code }, 'request refused by the router');
      sendStatus(exchange(request.raw, reply.raw).res, code, reasonFor(code), err.message);
    },
    // Requests Node's HTTP parser rejects (garbage, smuggling attempts, oversized headers, header
    // timeouts): a Status body and a closed connection. Nothing is written when a response on the
    // connection has already started (a watch followed by garbage), as that would corrupt it. The
    // parser reports every later chunk of the same connection as an error again: ignored.
    clientErrorHandler(err, socket) {
      if (answered.has(socket)) return;
      const errCode = typeof err.code === 'string' ? err.code : '';
      if (errCode === 'ERR_HTTP_REQUEST_TIMEOUT') guard.cut('request_header_timeout');
      // TLS errors before the handshake ended (its timeout among them, which HTTP/2's server passes
      // here): no HTTP answer can be written on such a socket, and it must not linger.
      if (errCode.startsWith('ERR_TLS_') || errCode.startsWith('ERR_SSL_')) {
        socket.destroy();
        return;
      }
      if (errCode === 'ECONNRESET' || socket.destroyed || !socket.writable || responseInProgress(socket)) {
        socket.destroy();
        return;
      }
      answered.add(socket);
      const reply = clientErrorReply(errCode);
      o.log.debug({ err: err.message, code: reply.code }, 'malformed request');
      answerAndClose(socket, rawStatus(reply.code, reply.message));
    },
  });

  // Requests are taken over in the first hook, before fastify looks at a body: it would refuse
  // Content-Types it cannot parse (415 for an empty one, which the apiserver takes as JSON) and
  // QUERY without one. Bodies are streamed to the apiserver untouched, without a size limit here.
  app.addHook('onRequest', async (request, reply) => {
    reply.hijack();
    const x = exchange(request.raw, reply.raw);
    await serve(x.req, x.res);
  });
  // Not reached (the hook answers everything); kept so that nothing falls back to fastify's defaults.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    o.log.warn({ err: err.message, code }, 'request error');
    reply.code(code).type('application/json').send(statusReply(code, err.message));
  });
  const handler = async (request: { raw: unknown }, reply: { hijack(): void; raw: unknown }) => {
    reply.hijack();
    const x = exchange(request.raw, reply.raw);
    await serve(x.req, x.res);
  };
  app.all('*', handler);
  app.setNotFoundHandler(handler);

  const server = app.server as unknown as Http2SecureServer & { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number };
  connections.attach(server);
  // Caps and deadlines; it also sets Node's headersTimeout, requestTimeout and keepAliveTimeout
  // (Node's HTTP/1.1 fallback reads them from this server; fastify sets them on HTTP/1 servers only).
  guard.attach(server);
  // No Nagle: Node's HTTP/1 fallback in an HTTP/2 server leaves it on (its http server would not),
  // so an answer written in several pieces waited ~40 ms for the client's delayed ACK (a forwarded
  // GET 44 ms instead of 2.7 ms). Go's servers, kube-apiserver's included, set TCP_NODELAY too.
  server.on('secureConnection', (socket: TLSSocket) => socket.setNoDelay(true));
  // Upgrades come on HTTP/1.1 connections only (Node's HTTP/1 fallback emits them on this server).
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
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
  // drop the connection without a word. Never spliced: the tunnel could outlive the answer. Over
  // HTTP/2 the event brings the stream's request and response instead of a socket.
  server.on('connect', (req: IncomingMessage | Http2ClientRequest, socket: Duplex | Http2ClientResponse) => {
    if (socket instanceof Http2ClientResponse) {
      sendStatus(socket, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return;
    }
    const url = req.url ?? '';
    answerAndClose(socket, url.startsWith('/')
      ? rawStatus(405, 'the server does not allow this method on the requested resource')
      : rawStatus(400, 'the request target must be an absolute path'));
  });
  // "Expect:" other than 100-continue: 417, as a Status (Node's own 417 has no body).
  server.on('checkExpectation', (req: unknown, res: unknown) => {
    const x = exchange(req, res);
    x.res.shouldKeepAlive = false;
    sendStatus(x.res, 417, 'BadRequest', 'unsupported Expect header');
  });

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
    setTls: (t) => server.setSecureContext(portTlsOptions(t)),
    shutdown(graceMs: number) {
      closing ??= (async () => {
        const closed = app.close();
        connections.goAwayAll();
        await ctx.inflight.drain(graceMs);
        connections.destroyAll();
        await closed;
      })();
      return closing;
    },
  };
}
