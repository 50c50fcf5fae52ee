// The metrics/health port: /metrics, /healthz, /livez, /readyz (plain HTTP, for probes and Prometheus).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** A readiness check: undefined when ready, otherwise why not. */
export type ReadinessCheck = () => string | undefined;

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(o: { host: string; port: number; registry: Registry; readiness: ReadinessCheck[] }): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
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
        const problems = o.readiness.map((c) => c()).filter((p): p is string => p !== undefined);
        return problems.length === 0 ? text(200, 'ok') : text(503, problems.map((p) => `[-] ${p}`).join('\n') + '\nreadyz check failed\n');
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
