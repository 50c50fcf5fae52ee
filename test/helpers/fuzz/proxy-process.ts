// The proxy under fuzz as users run it: `node dist/proxy/cli.js` as a child process with default
// flags (the cache on), plus the inspector on loopback, through which the test collects garbage and
// reads the heap. Its sockets are counted from /proc/<pid>/fd, its RSS from /proc/<pid>/status.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { repoRoot } from '../../cluster/paths.js';

export interface Exit { readonly code: number | null; readonly signal: NodeJS.Signals | null }

export class ProxyProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  url = '';
  metricsUrl = '';
  #inspector = '';
  /** The last lines of output, for a crash report. */
  readonly tail: string[] = [];
  /** Log lines at level error (50) or above. */
  errorLines = 0;

  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, ['--inspect=127.0.0.1:0', join(repoRoot(), 'dist', 'proxy', 'cli.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' },
    });
    const lines = (d: string) => {
      for (const l of d.split('\n')) {
        if (l === '') continue;
        this.tail.push(l.slice(0, 2000));
        if (this.tail.length > 50) this.tail.shift();
        const ws = /Debugger listening on (ws:\/\/\S+)/.exec(l);
        if (ws?.[1]) this.#inspector = ws[1];
        if (l.startsWith('{')) {
          try {
            const j = JSON.parse(l) as Record<string, unknown>;
            if (typeof j['level'] === 'number' && j['level'] >= 50) this.errorLines++;
            if (j['msg'] === 'kube-cache-proxy serving') {
              this.url = String(j['url']);
              this.metricsUrl = `http://127.0.0.1:${String(j['metricsPort'])}`;
            }
          } catch { /* not JSON: kept in the tail */ }
        }
      }
    };
    this.child.stdout?.setEncoding('utf8').on('data', lines);
    this.child.stderr?.setEncoding('utf8').on('data', lines);
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number { return this.child.pid ?? -1; }

  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.url === '' || this.#inspector === '') {
      if (this.exit) throw new Error(`the proxy exited (${this.exit.code ?? this.exit.signal}) before serving: ${this.tail.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`the proxy did not serve within ${timeoutMs} ms: ${this.tail.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Heap used after a full garbage collection, through the inspector. */
  async heapAfterGc(): Promise<number> {
    const ws = new WebSocket(this.#inspector);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    let id = 0;
    const pending = new Map<number, (v: unknown) => void>();
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown };
      if (m.id !== undefined) pending.get(m.id)?.(m.result);
    });
    const send = (method: string, params: Record<string, unknown> = {}) => new Promise<unknown>((resolve) => {
      const n = ++id;
      pending.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
    try {
      for (let i = 0; i < 3; i++) await send('HeapProfiler.collectGarbage');
      const r = await send('Runtime.evaluate', { expression: 'process.memoryUsage().heapUsed', returnByValue: true });
      const value = (r as { result?: { value?: unknown } } | undefined)?.result?.value;
      if (typeof value !== 'number') throw new Error(`heapUsed: ${JSON.stringify(r)}`);
      return value;
    } finally {
      ws.close();
    }
  }

  /** Open sockets of the process (TCP and Unix), from /proc. */
  sockets(): number {
    let n = 0;
    const dir = `/proc/${this.pid}/fd`;
    for (const fd of readdirSync(dir)) {
      try {
        if (readlinkSync(join(dir, fd)).startsWith('socket:')) n++;
      } catch { /* closed meanwhile */ }
    }
    return n;
  }

  /** Connections (not the listener) of this process whose local port is `port`: the clients' sockets on the proxy port. */
  connectionsOn(port: number): number {
    const inodes = new Set<string>();
    const dir = `/proc/${this.pid}/fd`;
    for (const fd of readdirSync(dir)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(join(dir, fd)));
        if (m?.[1]) inodes.add(m[1]);
      } catch { /* closed meanwhile */ }
    }
    let n = 0;
    for (const table of ['tcp', 'tcp6']) {
      let text = '';
      try { text = readFileSync(`/proc/${this.pid}/net/${table}`, 'utf8'); } catch { continue; }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        const local = f[1];
        const state = f[3];
        const inode = f[9];
        if (!local || !inode || state === '0A') continue; // 0A: LISTEN
        if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && inodes.has(inode)) n++;
      }
    }
    return n;
  }

  rssBytes(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return Number(m?.[1] ?? NaN) * 1024;
  }

  async metric(name: string): Promise<number> {
    const res = await fetch(`${this.metricsUrl}/metrics`);
    const text = await res.text();
    let sum = 0;
    for (const l of text.split('\n')) if (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) sum += Number(l.slice(l.lastIndexOf(' ') + 1));
    return sum;
  }

  /** Series (sample lines) on /metrics. */
  async seriesCount(): Promise<number> {
    const res = await fetch(`${this.metricsUrl}/metrics`);
    return (await res.text()).split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  }

  async stop(): Promise<Exit> {
    if (!this.exit) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const e = await this.exited;
    clearTimeout(timer);
    return e;
  }
}
