// The metrics/health port: /metrics, /healthz, /livez, /readyz (plain HTTP, for probes and Prometheus).
//
// /readyz answers like kube-apiserver's: `ok` when every check passes; otherwise 503 with one line
// per check, `[+]name ok` or `[-]name failed: reason`, then `readyz check failed`. `?verbose` lists
// the lines when ready too (ending `readyz check passed`), with remarks on checks that pass but
// are worth knowing about (a configured resource that cannot be cached).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

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
  close(): Promise<void>;
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

export async function startHealthServer(o: { host: string; port: number; registry: Registry; readiness: ReadinessCheck[] }): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const text = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(body);
    };
    switch (path) {
      case '/metrics':
        o.registry.metrics().then(
          (m) => {
            res.writeHead(200, { 'content-type': o.registry.contentType });
            res.end(m);
          },
          (err: unknown) => text(500, String(err)),
        );
        return;
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
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
