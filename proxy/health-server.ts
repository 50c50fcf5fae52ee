// The metrics/health port: /metrics, /healthz, /livez, /readyz, for probes and Prometheus. Plain
// HTTP by default; with `tls`, HTTPS with the main port's serving certificate (replaceable while
// running: setTls); with `auth` too, /metrics needs an authenticated and authorized client
// (proxy/metrics-auth.ts) while /healthz, /livez and /readyz stay open, as kube-apiserver's
// components leave them (authorization-always-allow-paths).
//
// /readyz answers like kube-apiserver's: `ok` when every check passes; otherwise 503 with one line
// per check, `[+]name ok` or `[-]name failed: reason`, then `readyz check failed`. `?verbose` lists
// the lines when ready too (ending `readyz check passed`), with remarks on checks that pass but
// are worth knowing about (a configured resource that cannot be cached).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { MetricsVerdict } from './metrics-auth.js';
import { portTlsOptions, type PortTls } from './tls-options.js';

/** One named check's result: `failed` says why it keeps the proxy unready; `note` remarks on a passing one. */
export interface ReadinessLine {
  readonly name: string;
  readonly failed?: string | undefined;
  readonly note?: string | undefined;
}

/**
 * A readiness check: undefined when ready, otherwise why not (listed as `check-<n>`); or the lines
 * of several named checks.
 */
export type ReadinessCheck = () => string | undefined | readonly ReadinessLine[];

export interface HealthServer {
  readonly port: number;
  /** http or https. */
  readonly scheme: 'http' | 'https';
  /** Serves another certificate and key from the next TLS handshake on (https only; a no-op on http). */
  setTls(tls: PortTls): void;
  close(): Promise<void>;
}

/** Decides whether a request may read /metrics. */
export interface MetricsAuthorizer {
  check(req: IncomingMessage, verb: string, path: string): Promise<MetricsVerdict>;
}

function lines(checks: readonly ReadinessCheck[]): ReadinessLine[] {
  return checks.flatMap((c, i): ReadinessLine[] => {
    const r = c();
    if (r === undefined) return [{ name: `check-${i}` }];
    if (typeof r === 'string') return [{ name: `check-${i}`, failed: r }];
    return [...r];
  });
}

/** The /readyz body and status for `checks`. */
export function readyz(checks: readonly ReadinessCheck[], verbose: boolean): { code: number; body: string } {
  const all = lines(checks);
  const failed = all.some((l) => l.failed !== undefined);
  if (!failed && !verbose) return { code: 200, body: 'ok' };
  const text = all.map((l) => (l.failed !== undefined ? `[-]${l.name} failed: ${l.failed}` : `[+]${l.name} ok${l.note ? ` (${l.note})` : ''}`));
  text.push(failed ? 'readyz check failed' : 'readyz check passed');
  return { code: failed ? 503 : 200, body: text.join('\n') + '\n' };
}

export async function startHealthServer(o: {
  host: string; port: number; registry: Registry; readiness: ReadinessCheck[];
  /** HTTPS with the main port's certificate, client CA and TLS policy; undefined: plain HTTP. */
  tls?: PortTls | undefined;
  /** Authenticate and authorize /metrics (HTTPS only). */
  auth?: MetricsAuthorizer | undefined;
}): Promise<HealthServer> {
  if (o.auth && !o.tls) throw new Error('authorization of /metrics needs TLS');
  const auth = o.auth;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const text = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(body);
    };
    switch (path) {
      case '/metrics': {
        const serve = () => o.registry.metrics().then(
          (m) => {
            res.writeHead(200, { 'content-type': o.registry.contentType });
            res.end(m);
          },
          (err: unknown) => text(500, String(err)),
        );
        if (!auth) return void serve();
        // The method in lower case, as kube-apiserver's request info names a non-resource request's verb.
        const verb = (req.method ?? '').toLowerCase();
        auth.check(req, verb, path).then(
          (v) => {
            if (v.code === 200) return serve();
            // The headers kube-apiserver sends with these Status bodies.
            res.writeHead(v.code, {
              'content-type': 'application/json', 'cache-control': 'no-cache, private', 'content-length': Buffer.byteLength(v.body),
              ...(v.code === 403 ? { 'x-content-type-options': 'nosniff' } : {}),
            });
            res.end(v.body);
          },
          (err: unknown) => text(500, String(err)),
        );
        return;
      }
      case '/healthz':
      case '/livez':
        return text(200, 'ok');
      case '/readyz': {
        // `?verbose`, `?verbose=true`, `?verbose=1`: any value but false/0, as kube-apiserver.
        const v = new URLSearchParams(q < 0 ? '' : url.slice(q + 1)).get('verbose');
        const r = readyz(o.readiness, v !== null && v !== 'false' && v !== '0');
        return text(r.code, r.body);
      }
      default:
        return text(404, 'not found');
    }
  };
  const secure = o.tls ? createHttpsServer(portTlsOptions(o.tls), handler) : undefined;
  const server: Server = secure ?? createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    scheme: o.tls ? 'https' : 'http',
    setTls: (t) => secure?.setSecureContext(portTlsOptions(t)),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
