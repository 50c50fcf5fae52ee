// A real Prometheus (Debian's `prometheus` package) for a test: its own temporary directory and
// storage, loopback only on a free port, scraping given targets every second; and promtool.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PROMETHEUS_BIN = process.env['KCP_PROMETHEUS'] ?? '/usr/bin/prometheus';
export const PROMTOOL_BIN = process.env['KCP_PROMTOOL'] ?? 'promtool';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RunResult {
  readonly code: number;
  readonly output: string;
}

/** Runs a command to its end; stdout and stderr together. */
export function runTool(cmd: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

export interface PromSeries {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

export class Prometheus {
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly url: string;
  #log = '';

  private constructor(child: ChildProcess, dir: string, url: string) {
    this.#child = child;
    this.#dir = dir;
    this.url = url;
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.#log = (this.#log + s).slice(-8000)));
  }

  /** Starts Prometheus scraping `targets` (host:port, plain HTTP `/metrics`) as `job` every second. */
  static async start(job: string, targets: readonly string[]): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'kcp-prometheus-'));
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(job)}`,
      '    static_configs:',
      `      - targets: ${JSON.stringify(targets)}`,
      '',
    ].join('\n'));
    const port = await freePort();
    const child = spawn(PROMETHEUS_BIN, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    const p = new Prometheus(child, dir, `http://127.0.0.1:${port}`);
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`prometheus exited with ${code}: ${p.#log}`))));
    exited.catch(() => {});
    const ready = (async () => {
      for (let i = 0; i < 300; i++) {
        try {
          const r = await fetch(`${p.url}/-/ready`);
          await r.text();
          if (r.status === 200) return;
        } catch {
          // not listening yet
        }
        await sleep(100);
      }
      throw new Error(`prometheus not ready after 30 s: ${p.#log}`);
    })();
    try {
      await Promise.race([ready, exited]);
    } catch (err) {
      await p.stop();
      throw err;
    }
    return p;
  }

  async #get(path: string, params: Record<string, string>): Promise<unknown> {
    const r = await fetch(`${this.url}${path}?${new URLSearchParams(params).toString()}`);
    const body: unknown = await r.json();
    const doc = record(body);
    if (r.status !== 200 || doc?.['status'] !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${r.status} ${JSON.stringify(body).slice(0, 500)}`);
    return doc['data'];
  }

  /** An instant query (`GET /api/v1/query`): its vector or scalar result as series. */
  async query(expr: string, time?: number): Promise<PromSeries[]> {
    const data = record(await this.#get('/api/v1/query', { query: expr, ...(time !== undefined ? { time: String(time) } : {}) }));
    const result = data?.['result'];
    if (data?.['resultType'] === 'scalar' && Array.isArray(result)) return [{ metric: {}, value: Number(result[1]) }];
    if (!Array.isArray(result)) throw new Error(`query ${expr}: unexpected result ${JSON.stringify(data).slice(0, 300)}`);
    return result.map((s: unknown) => {
      const m = record(record(s)?.['metric']) ?? {};
      const v = record(s)?.['value'];
      const labels: Record<string, string> = {};
      for (const [k, x] of Object.entries(m)) if (typeof x === 'string') labels[k] = x;
      return { metric: labels, value: Array.isArray(v) ? Number(v[1]) : NaN };
    });
  }

  /** `GET /api/v1/label/<name>/values?match[]=<selector>`: what Grafana's label_values() asks. */
  async labelValues(name: string, match: string): Promise<string[]> {
    const data = await this.#get(`/api/v1/label/${encodeURIComponent(name)}/values`, { 'match[]': match });
    return Array.isArray(data) ? data.filter((x): x is string => typeof x === 'string') : [];
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const gone = new Promise<void>((r) => this.#child.once('exit', () => r()));
      this.#child.kill('SIGTERM');
      const t = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
