// The main port against clients that hold resources without using them: caps on connections per
// source address and overall (refused with a Status and Retry-After, then closed), deadlines for the
// TLS handshake, a connection's first request, a request's body and an idle HTTP/2 connection, and
// responses whose client stopped reading cut once nothing has been taken for a while. HTTP/1.1
// headers and idle keep-alive are Node's own timeouts, set here (headersTimeout, keepAliveTimeout).
import { ServerResponse } from 'node:http';
import type { Http2SecureServer, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { Http2ClientResponse, isHttp2, type ClientRequest, type ClientResponse } from './client-http.js';
import { sendStatus } from './status.js';
import { ConnectionCounter, WriteProgress, type Admission, type ConnectionLimits, type Refusal } from './connection-limits.js';

export type CutReason = 'tls_handshake_timeout' | 'request_header_timeout' | 'request_body_timeout' | 'idle_timeout' | 'write_stall';

/** Refused connections kept open at once to be answered (past it, new ones over a cap are closed unanswered). */
const MAX_REFUSING = 256;
/** How long a refused connection has, after its handshake, to send a request and read the answer. */
const REFUSAL_GRACE_MS = 5_000;
/** How long an HTTP/2 stream answered 408 stays open (its body dropped) before it is reset. */
const RESET_GRACE_MS = 1_000;
/** How long an HTTP/2 session cut by a deadline has, after its GOAWAY, before it is destroyed. */
const GOAWAY_GRACE_MS = 1_000;

/** How long a connection answered before its request body ended may linger for the client to read. */
const LINGER_MS = 5_000;
/** How often responses are checked for stalled writes (and Node checks HTTP/1.1 header deadlines). */
const SWEEP_MS = 1_000;

interface Tracked {
  readonly res: ClientResponse;
  readonly progress: WriteProgress;
}

const socketKey = (s: Socket): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? 0}`;

export class ConnectionGuard {
  readonly #counter: ConnectionCounter;
  /** Admissions by remote address and port (the TCP socket's, seen again on its TLS socket). */
  readonly #admissions = new Map<string, { readonly source: string; readonly admission: Admission; readonly raw: Socket }>();
  readonly #firstRequest = new WeakMap<object, NodeJS.Timeout>();
  readonly #responses = new Set<Tracked>();
  readonly #refused: Counter<'reason'>;
  readonly #cut: Counter<'reason'>;
  #sweep: NodeJS.Timeout | undefined;

  constructor(private readonly o: { readonly limits: ConnectionLimits; readonly registry: Registry; readonly log: Logger }) {
    this.#counter = new ConnectionCounter(o.limits, MAX_REFUSING);
    this.#refused = new Counter({
      name: 'kube_cache_proxy_client_connections_refused_total',
      help: 'Client connections refused at --max-connections or --max-connections-per-source (answered with a Status and Retry-After when possible, then closed), by reason.',
      labelNames: ['reason'] as const,
      registers: [o.registry],
    });
    this.#cut = new Counter({
      name: 'kube_cache_proxy_client_connection_cuts_total',
      help: 'Client connections (or HTTP/2 streams) cut for holding resources: timeouts of the TLS handshake, request headers, request body or idleness, or a stalled write; by reason.',
      labelNames: ['reason'] as const,
      registers: [o.registry],
    });
  }

  /** Options for the TLS server (the handshake deadline). */
  get tlsOptions(): { handshakeTimeout?: number } {
    return this.o.limits.tlsHandshakeTimeoutMs > 0 ? { handshakeTimeout: this.o.limits.tlsHandshakeTimeoutMs } : {};
  }

  /** Counts a connection cut for `reason` (also for cuts made elsewhere, e.g. Node's header timeout). */
  cut(reason: CutReason): void {
    this.#cut.inc({ reason });
  }

  /** Follows the server's connections; call before listen (Node reads its checking interval then). */
  attach(server: Http2SecureServer & { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number; connectionsCheckingInterval: number }): void {
    const l = this.o.limits;
    server.headersTimeout = l.requestHeaderTimeoutMs;
    // The body's deadline is per request below (Node's requestTimeout would cover headers and body
    // together, checked only every connectionsCheckingInterval).
    server.requestTimeout = 0;
    server.keepAliveTimeout = l.idleTimeoutMs;
    server.connectionsCheckingInterval = SWEEP_MS;
    server.on('connection', (socket: Socket) => this.#connection(socket));
    server.on('secureConnection', (socket: TLSSocket) => this.#secure(socket));
    server.on('session', (session: ServerHttp2Session) => this.#session(session));
    server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.cut('tls_handshake_timeout');
      if (err.code === 'ERR_SSL_HTTP_REQUEST') answerPlainHttp(socket);
    });
    this.#sweep = setInterval(() => this.#sweepWrites(), SWEEP_MS);
    this.#sweep.unref();
    server.once('close', () => clearInterval(this.#sweep));
  }

  /**
   * Every request, first thing: a connection over a cap is answered here with a Status (true: the
   * request is done). Otherwise its body gets a deadline and its response is watched for stalls.
   */
  admit(req: ClientRequest, res: ClientResponse): boolean {
    const socket = isHttp2(req) ? req.stream.session?.socket : req.socket;
    if (socket && !isHttp2(req)) this.#clearFirstRequest(socket);
    const entry = socket ? this.#admissions.get(socketKey(socket as Socket)) : undefined;
    if (entry?.admission.kind === 'refused') {
      this.#refuse(req, res, entry.admission.reason, entry.source);
      return true;
    }
    this.#bodyDeadline(req, res);
    this.#watchWrites(res);
    return false;
  }

  #connection(socket: Socket): void {
    const source = socket.remoteAddress ?? '';
    const key = socketKey(socket);
    const admission = this.#counter.admit(source);
    if (admission.kind !== 'admitted') this.#refused.inc({ reason: admission.reason });
    if (admission.kind === 'dropped') {
      socket.destroy();
      return;
    }
    this.#admissions.set(key, { source, admission, raw: socket });
    socket.once('close', () => {
      this.#counter.release(source, admission);
      this.#admissions.delete(key);
    });
  }

  #secure(socket: TLSSocket): void {
    const entry = this.#admissions.get(socketKey(socket));
    if (entry?.admission.kind === 'refused') {
      setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
      return;
    }
    if (socket.alpnProtocol === 'h2' || this.o.limits.requestHeaderTimeoutMs <= 0) return;
    // Node's header timeout starts at a request's first byte: a connection that never sends one
    // would stay for ever.
    const raw = entry?.raw;
    const read = raw?.bytesRead ?? 0;
    const expire = (last: boolean) => {
      this.#firstRequest.delete(socket);
      // Bytes came after the handshake: a request is being received, and Node's header timeout
      // answers it with a 408 if it is too slow. Checked again once more, in case it does not.
      if (!last && raw !== undefined && raw.bytesRead > read) {
        const again = setTimeout(() => expire(true), this.o.limits.requestHeaderTimeoutMs + SWEEP_MS);
        again.unref();
        this.#firstRequest.set(socket, again);
        return;
      }
      this.cut('request_header_timeout');
      socket.destroy();
    };
    const t = setTimeout(() => expire(false), this.o.limits.requestHeaderTimeoutMs);
    t.unref();
    this.#firstRequest.set(socket, t);
    socket.once('close', () => this.#clearFirstRequest(socket));
  }

  #clearFirstRequest(socket: object): void {
    const t = this.#firstRequest.get(socket);
    if (t === undefined) return;
    clearTimeout(t);
    this.#firstRequest.delete(socket);
  }

  /**
   * HTTP/2: the first request within the header timeout, and no stretch without a stream open
   * longer than the idle timeout (nghttp2 keeps a request's headers until they are complete, and
   * bytes trickling in would keep Node's own session timeout from firing).
   */
  #session(session: ServerHttp2Session): void {
    const a = session.socket ? this.#admissions.get(socketKey(session.socket as Socket))?.admission : undefined;
    if (a?.kind === 'refused') return;
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, reason: CutReason) => {
      clearTimeout(timer);
      if (ms <= 0) return;
      timer = setTimeout(() => {
        this.cut(reason);
        if (!session.closed) session.close();
        setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
      }, ms);
      timer.unref();
    };
    arm(this.o.limits.requestHeaderTimeoutMs, 'request_header_timeout');
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      clearTimeout(timer);
      stream.once('close', () => {
        if (--open === 0 && !session.closed) arm(this.o.limits.idleTimeoutMs, 'idle_timeout');
      });
    });
    session.once('close', () => clearTimeout(timer));
  }

  #refuse(req: ClientRequest, res: ClientResponse, reason: Refusal, source: string): void {
    const perSource = reason === 'max_connections_per_source';
    const message = perSource
      ? `too many connections from ${source || 'this address'} (--max-connections-per-source ${this.o.limits.maxConnectionsPerSource})`
      : `kube-cache-proxy has too many connections open (--max-connections ${this.o.limits.maxConnections})`;
    res.shouldKeepAlive = false;
    sendStatus(res, perSource ? 429 : 503, perSource ? 'TooManyRequests' : 'ServiceUnavailable', message, { retryAfterSeconds: 1 });
    if (isHttp2(req)) {
      const session = req.stream.session;
      res.once('finish', () => {
        if (session && !session.closed) session.close();
      });
    }
  }

  #bodyDeadline(req: ClientRequest, res: ClientResponse): void {
    const ms = this.o.limits.requestBodyTimeoutMs;
    if (ms <= 0 || !hasBody(req) || req.readableEnded) return;
    const t = setTimeout(() => {
      this.cut('request_body_timeout');
      this.o.log.debug({ url: req.url }, 'request body not received in time');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.shouldKeepAlive = false;
      if (isHttp2(req)) {
        // The answer sent, the stream is reset (NO_ERROR): its body is not wanted any more, as Go's
        // server does after a whole answer to a request whose body is still coming. (The
        // compatibility response's 'finish' waits for the stream to close: the stream's own.)
        // The reset waits RESET_GRACE_MS: a client that is still writing its body when the answer
        // arrives gets a moment to see it and stop (Node's own HTTP/2 client loses a stream whose
        // write is pending as the reset arrives: it never closes it). Its bytes meanwhile are dropped.
        const stream = req.stream;
        stream.once('finish', () => {
          const reset = setTimeout(() => {
            if (!stream.closed) stream.close();
          }, RESET_GRACE_MS);
          reset.unref();
          stream.once('close', () => clearTimeout(reset));
        });
      } else {
        res.once('finish', () => {
          const socket = req.socket;
          socket.end();
          setTimeout(() => socket.destroy(), LINGER_MS).unref();
        });
      }
      sendStatus(res, 408, 'Timeout', 'the request body was not received in time');
    }, ms);
    t.unref();
    const done = () => clearTimeout(t);
    req.once('end', done);
    res.once('finish', done);
    res.once('close', done);
  }

  #watchWrites(res: ClientResponse): void {
    if (this.o.limits.writeStallTimeoutMs <= 0) return;
    const tracked: Tracked = { res, progress: new WriteProgress(Date.now()) };
    this.#responses.add(tracked);
    const drained = () => tracked.progress.progressed(Date.now());
    res.on('drain', drained);
    res.once('close', () => {
      res.off('drain', drained);
      this.#responses.delete(tracked);
    });
  }

  #sweepWrites(): void {
    const now = Date.now();
    for (const t of this.#responses) {
      if (t.res.destroyed) {
        this.#responses.delete(t);
        continue;
      }
      if (t.progress.sample(pendingBytes(t.res), now, this.o.limits.writeStallTimeoutMs, flushedBytes(t.res))) {
        this.#responses.delete(t);
        this.cut('write_stall');
        this.o.log.debug('response stalled: its client has taken nothing for too long');
        t.res.destroy();
      }
    }
  }
}

/** Whether a request has a body still to come (HTTP/1.1: framed by Content-Length or Transfer-Encoding). */
function hasBody(req: ClientRequest): boolean {
  if (isHttp2(req)) return req.hasBody;
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/** Bytes written to a response that its client has not taken yet (HTTP/1.1: with the socket's buffer). */
function pendingBytes(res: ClientResponse): number {
  if (res instanceof Http2ClientResponse) return res.stream.writableLength;
  return res instanceof ServerResponse ? res.writableLength : 0;
}

/** HTTP/1.1: bytes the connection has handed on towards the client so far (HTTP/2: 0, unknown per stream). */
function flushedBytes(res: ClientResponse): number {
  const socket = res instanceof ServerResponse ? res.socket : null;
  return socket ? socket.bytesWritten - socket.writableLength : 0;
}

/**
 * Plain HTTP sent to the TLS port (an http:// URL for an https:// server) is answered in plain text,
 * as kube-apiserver (Go's net/http) answers it, on the TCP connection under the failed handshake:
 * Node's TLS socket keeps that as `_parent`. Without it the connection is only closed.
 */
function answerPlainHttp(socket: TLSSocket): void {
  const raw: unknown = (socket as unknown as { _parent?: unknown })._parent;
  if (!(raw instanceof Socket) || !raw.writable) return;
  // The client may be gone already (a reset while this is written): nothing to do then.
  raw.on('error', () => undefined);
  raw.end('HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n');
}
