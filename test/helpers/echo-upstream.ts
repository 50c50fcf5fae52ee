// A stand-in apiserver for upgrade tests: a TLS server with a certificate from the test cluster's CA
// that accepts WebSocket upgrades (echoing every message) and `Upgrade: SPDY/3.1` requests
// (answering 101 and echoing raw bytes), and records the request head of everything it receives.
//
// Per request, query parameters change its behaviour: `refuse=CODE` answers CODE with a JSON body
// instead of switching protocols (and, like Go's net/http, then closes the connection when the
// request asked for `Connection: close`); `trickle` sends the 101 head one byte at a time; `hangup` closes the connection without a
// word; on plain
// requests (answered 404), `delay=MS` holds the answer back.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TestCluster } from '../cluster/cluster.js';

const execFileP = promisify(execFile);

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  /** As received: [name, value, name, value, …]. */
  readonly rawHeaders: readonly string[];
  readonly upgrade: boolean;
}

export interface EchoUpstream {
  readonly url: string;
  readonly requests: readonly RecordedRequest[];
  /** Upgraded connections currently open on the upstream side. */
  readonly open: number;
  /** All values of a header (case-insensitive) in a recorded request. */
  header(r: RecordedRequest, name: string): string[];
  /** The recorded request carrying `X-Test-Id: id`. */
  find(id: string): RecordedRequest | undefined;
  /** Cuts every upgraded connection from the upstream side. */
  destroyConnections(): void;
  close(): Promise<void>;
}

/** Issues a serving certificate for 127.0.0.1 from the cluster CA into a fresh temp dir. */
export async function issueServingCert(cluster: TestCluster, cn: string): Promise<{ cert: Buffer; key: Buffer; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kcp-echo-'));
  const prefix = join(dir, cn);
  await execFileP(cluster.info.kcluster, [
    'pki', 'cert', '--ca', cluster.info.caFile.replace(/\.crt$/, ''), '--out', prefix, '--cn', cn, '--server', '--san', '127.0.0.1',
  ]);
  return { cert: readFileSync(`${prefix}.crt`), key: readFileSync(`${prefix}.key`), dir };
}

export function refusalResponse(code: number, connectionClose: boolean): string {
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `echo refused with ${code}`, reason: 'BadRequest', code }) + '\n';
  return `HTTP/1.1 ${code} Refused\r\nContent-Type: application/json\r\nX-Echo: refused\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${connectionClose ? 'Connection: close\r\n' : ''}\r\n${body}`;
}

function tokens(v: string | undefined): string[] {
  return (v ?? '').split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '');
}

export async function startEchoUpstream(cluster: TestCluster): Promise<EchoUpstream> {
  const { cert, key, dir } = await issueServingCert(cluster, 'echo-upstream');
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Duplex>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  const server: Server = createServer({ cert, key });
  const record = (req: IncomingMessage, upgrade: boolean) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: [...req.rawHeaders], upgrade });
  };

  server.on('request', (req, res) => {
    record(req, false);
    const delay = Number(new URL(req.url ?? '/', 'https://echo').searchParams.get('delay') ?? '0');
    const body = 'echo upstream: upgrades only\n';
    setTimeout(() => {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }, delay);
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    record(req, true);
    socket.on('error', () => socket.destroy());
    const query = new URL(req.url ?? '/', 'https://echo').searchParams;
    const refuse = query.get('refuse');
    const close = tokens(req.headers.connection).includes('close');
    if (query.get('hangup') !== null) {
      socket.destroy();
      return;
    }
    if (refuse) {
      socket.write(refusalResponse(Number(refuse), close));
      if (close) socket.end();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const protocol = (req.headers.upgrade ?? '').toLowerCase();
    if (protocol === 'websocket') {
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        ws.on('error', () => ws.terminate());
      });
      return;
    }
    if (protocol === 'spdy/3.1') {
      const response = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n';
      const echoBack = () => {
        if (head.length > 0) socket.write(head);
        socket.pipe(socket);
      };
      if (query.get('trickle') === null) {
        socket.write(response);
        echoBack();
        return;
      }
      // `trickle`: the response head one byte at a time, each in its own TLS record.
      let i = 0;
      const tick = () => {
        if (socket.destroyed) return;
        if (i >= response.length) return echoBack();
        socket.write(response[i++] ?? '');
        setTimeout(tick, 3);
      };
      tick();
      return;
    }
    socket.end(refusalResponse(400, true));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const header = (r: RecordedRequest, name: string) => {
    const out: string[] = [];
    for (let i = 0; i + 1 < r.rawHeaders.length; i += 2) {
      if ((r.rawHeaders[i] ?? '').toLowerCase() === name.toLowerCase()) out.push(r.rawHeaders[i + 1] ?? '');
    }
    return out;
  };
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    get open() {
      return sockets.size;
    },
    header,
    find: (id) => requests.find((r) => header(r, 'x-test-id').includes(id)),
    destroyConnections() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
