// The proxy's main port: fastify on TLS, every request forwarded to an apiserver (the cache joins
// here in its own issue), upgrades spliced, errors answered as Kubernetes Status.
import fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AddressInfo } from 'node:net';
import { forwardRequest } from './forward.js';
import { handleUpgrade } from './upgrade.js';
import { InflightTracker } from './inflight.js';
import { createProxyMetrics } from './metrics.js';
import { statusBody } from './status.js';
import type { UpstreamSet } from './upstream.js';
import type { ProxyContext } from './context.js';

export interface ProxyServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer; readonly clientCa?: string | Buffer | undefined };
  readonly upstreams: UpstreamSet;
  readonly log: Logger;
  readonly registry: Registry;
}

export interface ProxyServer {
  readonly port: number;
  readonly url: string;
  readonly draining: boolean;
  /** Stops accepting, ends watches cleanly, lets short requests finish within graceMs. */
  shutdown(graceMs: number): Promise<void>;
}

function statusReply(code: number, message: string): string {
  const reason = code === 404 ? 'NotFound' : code === 413 ? 'RequestEntityTooLarge' : code >= 500 ? 'InternalError' : 'BadRequest';
  return statusBody(code, reason, message);
}

export async function startProxyServer(o: ProxyServerOptions): Promise<ProxyServer> {
  const ctx: ProxyContext = {
    upstreams: o.upstreams,
    clientCerts: o.tls.clientCa !== undefined,
    log: o.log,
    metrics: createProxyMetrics(o.registry),
    inflight: new InflightTracker(),
  };
  const app: FastifyInstance = fastify({
    https: {
      cert: o.tls.cert,
      key: o.tls.key,
      ...(o.tls.clientCa !== undefined ? { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    },
    logger: false,
    return503OnClosing: true,
    keepAliveTimeout: 65_000,
    frameworkErrors(err, _req, reply) {
      reply.raw.writeHead(400, { 'content-type': 'application/json' });
      reply.raw.end(statusReply(400, err.message));
    },
  }) as unknown as FastifyInstance;

  // Bodies are streamed to the apiserver untouched: no parsing, no size limit here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    o.log.warn({ err: err.message, code }, 'request error');
    reply.code(code).type('application/json').send(statusReply(code, err.message));
  });
  const handler = async (request: { raw: import('node:http').IncomingMessage }, reply: { hijack(): void; raw: import('node:http').ServerResponse }) => {
    reply.hijack();
    try {
      await forwardRequest(request.raw, reply.raw, ctx);
    } catch (err) {
      o.log.error({ err: String(err) }, 'forwarding failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' });
        reply.raw.end(statusReply(500, 'kube-cache-proxy: internal error'));
      } else reply.raw.destroy();
    }
  };
  app.all('*', handler);
  app.setNotFoundHandler(handler);

  app.server.on('upgrade', (req, socket, head: Buffer) => {
    try {
      handleUpgrade(req, socket, head, ctx);
    } catch (err) {
      o.log.error({ err: String(err) }, 'upgrade failed');
      socket.destroy();
    }
  });
  app.server.headersTimeout = 60_000;
  app.server.requestTimeout = 0;

  await app.listen({ host: o.host, port: o.port });
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
