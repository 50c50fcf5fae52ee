// The benchmark's HTTP client: one undici Pool per target (HTTP/1.1 keep-alive, no HTTP/2), sending
// what a client-go JSON client sends (Bearer token, Accept: application/json, Accept-Encoding: gzip).
// Latency is measured to the last byte of the (still compressed) body.
import { gunzipSync } from 'node:zlib';
import { Pool } from 'undici';

export const USER_AGENT = 'kube-cache-proxy-bench/v0.1.0 (linux/amd64) kubernetes/bench';

export interface Reply {
  readonly status: number;
  readonly bytes: number;
  readonly ms: number;
  readonly encoding: string | undefined;
  /** The decoded body, only when asked for. */
  readonly body?: Buffer;
  readonly retryAfter?: number;
}

export class Client {
  readonly name: string;
  readonly origin: string;
  readonly #pool: Pool;
  readonly #token: string;

  constructor(name: string, origin: string, o: { ca: Buffer; token: string; connections: number }) {
    this.name = name;
    this.origin = origin;
    this.#token = o.token;
    this.#pool = new Pool(origin, {
      connections: o.connections,
      pipelining: 1,
      allowH2: false,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
      connect: { ca: o.ca },
    });
  }

  async request(method: string, path: string, o: { body?: string; contentType?: string; keepBody?: boolean } = {}): Promise<Reply> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#token}`,
      accept: 'application/json',
      'accept-encoding': 'gzip',
      'user-agent': USER_AGENT,
    };
    if (o.contentType) headers['content-type'] = o.contentType;
    const started = performance.now();
    const res = await this.#pool.request({ method: method as 'GET', path, headers, body: o.body });
    let bytes = 0;
    const chunks: Buffer[] | undefined = o.keepBody || res.statusCode >= 300 ? [] : undefined;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      chunks?.push(chunk);
    }
    const ms = performance.now() - started;
    const encoding = typeof res.headers['content-encoding'] === 'string' ? res.headers['content-encoding'] : undefined;
    const ra = Number(res.headers['retry-after']);
    const reply: Reply = { status: res.statusCode, bytes, ms, encoding, ...(Number.isFinite(ra) && ra > 0 ? { retryAfter: ra } : {}) };
    if (!chunks) return reply;
    const raw = Buffer.concat(chunks);
    return { ...reply, body: encoding === 'gzip' ? gunzipSync(raw) : raw };
  }

  get(path: string, keepBody = false): Promise<Reply> {
    return this.request('GET', path, { keepBody });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

export interface LoadResult {
  readonly latenciesMs: number[];
  readonly wallSeconds: number;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly bytes: number;
  readonly gzipped: number;
  readonly firstError?: string;
}

/**
 * A closed loop: `concurrency` workers send `requests` requests in total, each the next path from
 * `pathOf(i)`, and record every latency.
 */
export async function closedLoop(client: Client, requests: number, concurrency: number, pathOf: (i: number) => string): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let bytes = 0;
  let gzipped = 0;
  let next = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= requests) return;
      try {
        const r = await client.get(pathOf(i));
        latenciesMs.push(r.ms);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        bytes += r.bytes;
        if (r.encoding === 'gzip') gzipped++;
        if (r.status !== 200) {
          errors++;
          firstError ??= `${r.status} ${r.body?.toString('utf8').slice(0, 300) ?? ''}`;
        }
      } catch (err) {
        errors++;
        firstError ??= String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, requests)) }, worker));
  return { latenciesMs, wallSeconds: (performance.now() - started) / 1000, statuses, errors, bytes, gzipped, ...(firstError ? { firstError } : {}) };
}

/**
 * Writes with retries for the population: 409 counts as done (already there), 429/5xx and
 * connection errors are retried with a short backoff.
 */
export async function writeWithRetry(client: Client, method: string, path: string, body: string, contentType = 'application/json'): Promise<void> {
  let last = '';
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      const r = await client.request(method, path, { body, contentType });
      if (r.status < 300 || r.status === 409) return;
      last = `${r.status} ${r.body?.toString('utf8').slice(0, 500) ?? ''}`;
      if (r.status !== 429 && r.status < 500) break;
      await new Promise((res) => setTimeout(res, (r.retryAfter ?? 0.2 * 2 ** attempt) * 1000));
    } catch (err) {
      last = String(err);
      await new Promise((res) => setTimeout(res, 200 * 2 ** attempt));
    }
  }
  throw new Error(`${method} ${path}: ${last}`);
}
