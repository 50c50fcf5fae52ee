// The proxy under test as a separate process (dist/proxy/cli.js), and its metrics port.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { TestCluster } from '../test/cluster/cluster.js';
import { freePort } from '../test/cluster/processes.js';
import { parseMetrics, type Metrics } from './prom.js';
import { sleep } from './stats.js';

/** Every proxy started and not yet stopped, so an interrupted run can stop them all. */
const live = new Set<ProxyProcess>();

export async function stopAllProxies(): Promise<void> {
  await Promise.allSettled([...live].map((p) => p.stop()));
}

export class ProxyProcess {
  readonly pid: number;
  readonly url: string;
  readonly metricsUrl: string;
  readonly logFile: string;
  /** Seconds from spawn until /readyz answered 200 (the cache synced). */
  readySeconds = Number.NaN;
  readonly #child: ChildProcess;
  #exited: Promise<void>;
  #alive = true;

  private constructor(child: ChildProcess, url: string, metricsUrl: string, logFile: string) {
    if (child.pid === undefined) throw new Error('the proxy did not start');
    this.pid = child.pid;
    this.#child = child;
    this.url = url;
    this.metricsUrl = metricsUrl;
    this.logFile = logFile;
    this.#exited = new Promise((resolve) => child.once('exit', () => {
      this.#alive = false;
      live.delete(this);
      resolve();
    }));
    live.add(this);
  }

  /**
   * Starts `node dist/proxy/cli.js` in front of the cluster's first apiserver and waits until ready.
   * `nodeArgs` go to node itself (e.g. `--cpu-prof`: the profile is written when the proxy exits,
   * which it does by process.exit after SIGTERM — node writes it on that path too).
   */
  static async start(cluster: TestCluster, logFile: string, extraArgs: readonly string[] = [], o: { readonly nodeArgs?: readonly string[] } = {}): Promise<ProxyProcess> {
    const port = await freePort();
    const metricsPort = await freePort();
    const cli = fileURLToPath(new URL('../proxy/cli.js', import.meta.url));
    const i = cluster.info;
    const args = [
      ...(o.nodeArgs ?? []),
      cli,
      '--kubeconfig', i.users.admin.kubeconfig,
      '--listen', `127.0.0.1:${port}`,
      '--metrics-listen', `127.0.0.1:${metricsPort}`,
      '--tls-cert-file', i.servingCertFile,
      '--tls-private-key-file', i.servingKeyFile,
      '--log-level', 'warn',
      ...extraArgs,
    ];
    const fd = openSync(logFile, 'a');
    const started = performance.now();
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const p = new ProxyProcess(child, `https://127.0.0.1:${port}`, `http://127.0.0.1:${metricsPort}`, logFile);
    try {
      await p.#waitReady(15 * 60_000);
    } catch (err) {
      await p.stop();
      throw err;
    }
    p.readySeconds = (performance.now() - started) / 1000;
    return p;
  }

  async #waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.#alive) throw new Error(`the proxy exited before it was ready; log: ${this.logFile}\n${tail(this.logFile)}`);
      try {
        const res = await request(`${this.metricsUrl}/readyz`);
        last = await res.body.text();
        if (res.statusCode === 200) return;
      } catch (err) {
        last = String(err);
      }
      await sleep(100);
    }
    throw new Error(`the proxy was not ready after ${timeoutMs / 1000} s: ${last}`);
  }

  async metrics(): Promise<Metrics> {
    const res = await request(`${this.metricsUrl}/metrics`);
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`/metrics: ${res.statusCode}`);
    return parseMetrics(text);
  }

  /** SIGTERM, then SIGKILL after 20 s. */
  async stop(): Promise<void> {
    if (!this.#alive) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 20_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
