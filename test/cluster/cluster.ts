// A real Kubernetes control plane on loopback: one etcd and N kube-apiservers sharing it, one CA,
// one service-account key, Node,RBAC authorization, and four users (see README "Test cluster").
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { ensureClusterBinaries } from './build.js';
import { freePort, isAlive, startProcess, stopProcess } from './processes.js';
import { apiserverHost, portFreeOnAll } from './addresses.js';
import { etcdKv, writeReconcilerObjects } from './kubernetes-endpoints.js';

const execFileP = promisify(execFile);

export interface ManagedProcess {
  name: string;
  pid: number;
  args: string[];
  logFile: string;
}

export interface ApiserverInfo extends ManagedProcess {
  url: string;
  /** The address it binds and advertises: 127.0.0.1, or 127.0.0.(i+2) with distinct addresses. */
  host: string;
  port: number;
}

export interface EtcdInfo extends ManagedProcess {
  url: string;
}

export interface UserInfo {
  name: string;
  kubeconfig: string;
  token?: string;
  certFile?: string;
  keyFile?: string;
}

/** DIR/cluster.json */
export interface ClusterInfo {
  dir: string;
  kubernetesVersion: string;
  kcluster: string;
  kubectl: string;
  caFile: string;
  caKeyFile: string;
  etcd: EtcdInfo;
  apiservers: ApiserverInfo[];
  users: { admin: UserInfo; viewer: UserInfo; nobody: UserInfo; node1: UserInfo };
  /** A serving certificate for 127.0.0.1/localhost signed by the cluster CA (for a proxy under test). */
  servingCertFile: string;
  servingKeyFile: string;
}

export interface UpOptions {
  dir: string;
  apiservers?: number;
  /**
   * Each apiserver on its own loopback address (127.0.0.2, 127.0.0.3, …), all on one port, instead of
   * all on 127.0.0.1 with a port each. Default: true when there are several apiservers.
   */
  distinctAddresses?: boolean;
  log?: (msg: string) => void;
  /** Extra kube-apiserver flags, appended to every apiserver's (e.g. `--max-requests-inflight=100`). */
  apiserverArgs?: readonly string[];
  /** Extra bearer-token users, appended to tokens.csv (e.g. `system:node:<name>` in `system:nodes`). */
  tokenUsers?: readonly TokenUser[];
}

export interface TokenUser {
  token: string;
  user: string;
  uid?: string;
  groups?: readonly string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TestCluster {
  readonly info: ClusterInfo;
  #agent: Agent | undefined;

  private constructor(info: ClusterInfo) {
    this.info = info;
  }

  static async up(opts: UpOptions): Promise<TestCluster> {
    const log = opts.log ?? (() => {});
    const dir = opts.dir;
    const n = opts.apiservers ?? 1;
    const distinct = opts.distinctAddresses ?? n > 1;
    const hosts = Array.from({ length: n }, (_, i) => apiserverHost(i, distinct));
    const bins = await ensureClusterBinaries(log);
    const pki = join(dir, 'pki');
    const logs = join(dir, 'logs');
    for (const stale of ['etcd', 'pki', 'logs']) rmSync(join(dir, stale), { recursive: true, force: true });
    mkdirSync(pki, { recursive: true });
    mkdirSync(logs, { recursive: true });

    const kc = (...args: string[]) => execFileP(bins.kcluster, args);
    const ca = join(pki, 'ca');
    await kc('pki', 'ca', '--out', ca, '--cn', 'kube-cache-proxy-test-ca');
    await kc('pki', 'cert', '--ca', ca, '--out', join(pki, 'apiserver'), '--cn', 'kube-apiserver', '--server',
      ...[...new Set(['127.0.0.1', ...hosts]), 'localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', '10.0.0.1'].flatMap((s) => ['--san', s]));
    await kc('pki', 'cert', '--ca', ca, '--out', join(pki, 'serving'), '--cn', 'kube-cache-proxy', '--server', '--san', '127.0.0.1', '--san', 'localhost', '--san', '::1');
    await kc('pki', 'cert', '--ca', ca, '--out', join(pki, 'node-1'), '--cn', 'system:node:node-1', '--org', 'system:nodes', '--client');
    await kc('pki', 'rsa', '--out', join(pki, 'sa'));

    const token = () => randomBytes(24).toString('hex');
    const tokens = { admin: token(), viewer: token(), nobody: token() };
    writeFileSync(join(pki, 'tokens.csv'), [
      `${tokens.admin},admin,uid-admin,"system:masters"`,
      `${tokens.viewer},viewer,uid-viewer,"team-a-viewers"`,
      `${tokens.nobody},nobody,uid-nobody`,
      ...(opts.tokenUsers ?? []).map((u) => `${u.token},${u.user},${u.uid ?? `uid-${u.user}`}${u.groups?.length ? `,"${u.groups.join(',')}"` : ''}`),
      '',
    ].join('\n'), { mode: 0o600 });

    const etcdPort = await freePort();
    const etcdPeer = await freePort();
    const etcdArgs = ['etcd', '--data-dir', join(dir, 'etcd'), '--client-port', String(etcdPort), '--peer-port', String(etcdPeer)];
    const etcdLog = join(logs, 'etcd.log');
    const etcd: EtcdInfo = { name: 'etcd', pid: startProcess({ name: 'etcd', command: bins.kcluster, args: etcdArgs, logFile: etcdLog }), args: etcdArgs, logFile: etcdLog, url: `http://127.0.0.1:${etcdPort}` };

    const apiservers: ApiserverInfo[] = [];
    const sharedPort = distinct ? await portFreeOnAll(hosts) : 0;
    for (let i = 0; i < n; i++) {
      const host = hosts[i] ?? '127.0.0.1';
      const port = distinct ? sharedPort : await freePort();
      const name = `apiserver-${i}`;
      const args = [...apiserverArgs({ dir, pki, host, port, etcdUrl: etcd.url, name }), ...(opts.apiserverArgs ?? [])];
      const logFile = join(logs, `${name}.log`);
      apiservers.push({ name, host, port, url: `https://${host}:${port}`, args, logFile, pid: 0 });
    }
    const userKubeconfig = (name: string) => join(dir, `${name}.kubeconfig`);
    const info: ClusterInfo = {
      dir,
      kubernetesVersion: '',
      kcluster: bins.kcluster,
      kubectl: bins.kubectl,
      caFile: `${ca}.crt`,
      caKeyFile: `${ca}.key`,
      etcd,
      apiservers,
      users: {
        admin: { name: 'admin', kubeconfig: userKubeconfig('admin'), token: tokens.admin },
        viewer: { name: 'viewer', kubeconfig: userKubeconfig('viewer'), token: tokens.viewer },
        nobody: { name: 'nobody', kubeconfig: userKubeconfig('nobody'), token: tokens.nobody },
        node1: { name: 'node-1', kubeconfig: userKubeconfig('node-1'), certFile: join(pki, 'node-1.crt'), keyFile: join(pki, 'node-1.key') },
      },
      servingCertFile: join(pki, 'serving.crt'),
      servingKeyFile: join(pki, 'serving.key'),
    };
    const cluster = new TestCluster(info);
    try {
      await cluster.#waitEtcd();
      for (let i = 0; i < n; i++) await cluster.startApiserver(i, { wait: false });
      for (let i = 0; i < n; i++) await cluster.waitReady(i);
      const versionBody = await cluster.#adminRequest('GET', '/version');
      const v: unknown = JSON.parse(versionBody);
      info.kubernetesVersion = typeof v === 'object' && v !== null && 'gitVersion' in v ? String(v.gitVersion) : '';
      for (const u of Object.values(info.users)) writeFileSync(u.kubeconfig, kubeconfigFor(info, u, info.apiservers[0]?.url ?? ''), { mode: 0o600 });
      await cluster.#bootstrapRbac();
      cluster.save();
      log(`cluster up: ${apiservers.map((a) => a.url).join(' ')} (etcd ${etcd.url}), kubeconfigs in ${dir}`);
    } catch (err) {
      await cluster.down();
      throw err;
    }
    return cluster;
  }

  /** Attaches to a cluster started earlier (e.g. by `npm run cluster -- up`). */
  static load(dir: string): TestCluster {
    const raw: unknown = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8'));
    const info = raw as ClusterInfo;
    // Written before apiservers had an address of their own: it is the URL's.
    for (const a of info.apiservers) a.host ??= new URL(a.url).hostname;
    return new TestCluster(info);
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, 'cluster.json'));
  }

  save(): void {
    writeFileSync(join(this.info.dir, 'cluster.json'), JSON.stringify(this.info, null, 2) + '\n');
  }

  get agent(): Agent {
    this.#agent ??= new Agent({ connect: { ca: readFileSync(this.info.caFile) } });
    return this.#agent;
  }

  async down(): Promise<void> {
    await Promise.all(this.info.apiservers.map((a) => (a.pid ? stopProcess(a.pid) : undefined)));
    if (this.info.etcd.pid) await stopProcess(this.info.etcd.pid);
    await this.#agent?.close();
    this.#agent = undefined;
  }

  async startApiserver(i: number, opts: { wait?: boolean } = {}): Promise<void> {
    const a = this.#apiserver(i);
    if (a.pid && isAlive(a.pid)) return;
    a.pid = startProcess({ name: a.name, command: this.info.kcluster, args: a.args, logFile: a.logFile });
    this.save();
    if (opts.wait ?? true) await this.waitReady(i);
  }

  /** Stops apiserver i (SIGTERM lets it shut down gracefully; SIGKILL is a crash). */
  async stopApiserver(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const a = this.#apiserver(i);
    if (a.pid) await stopProcess(a.pid, { signal, graceMs: 70_000 });
    a.pid = 0;
    this.save();
  }

  async restartApiserver(i: number): Promise<void> {
    await this.stopApiserver(i);
    await this.startApiserver(i);
  }

  async stopEtcd(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.info.etcd.pid) await stopProcess(this.info.etcd.pid, { signal });
    this.info.etcd.pid = 0;
    this.save();
  }

  async startEtcd(): Promise<void> {
    const e = this.info.etcd;
    if (e.pid && isAlive(e.pid)) return;
    e.pid = startProcess({ name: e.name, command: this.info.kcluster, args: e.args, logFile: e.logFile });
    this.save();
    await this.#waitEtcd();
  }

  /** Compacts etcd at its current revision, so watches from older resourceVersions get 410. */
  async compactEtcd(): Promise<bigint> {
    const range = await this.#etcdPost('/v3/kv/range', { key: Buffer.from('\0').toString('base64'), limit: 1 });
    const rev = BigInt(String(jsonPath(range, ['header', 'revision']) ?? '0'));
    await this.#etcdPost('/v3/kv/compaction', { revision: rev.toString(), physical: true });
    return rev;
  }

  async waitReady(i: number, timeoutMs = 120_000): Promise<void> {
    const a = this.#apiserver(i);
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!isAlive(a.pid)) throw new Error(`${a.name} exited; see ${a.logFile}`);
      try {
        const res = await request(`${a.url}/readyz`, { dispatcher: this.agent, headers: { authorization: `Bearer ${this.info.users.admin.token}` } });
        last = await res.body.text();
        if (res.statusCode === 200) return;
      } catch (err) {
        last = String(err);
      }
      await sleep(250);
    }
    throw new Error(`${a.name} not ready after ${timeoutMs} ms: ${last}`);
  }

  /** kubectl with the given user's kubeconfig (and optionally another server, e.g. the proxy). */
  async kubectl(user: keyof ClusterInfo['users'], args: string[], opts: { server?: string; input?: string } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
    const u = this.info.users[user];
    const full = ['--kubeconfig', u.kubeconfig, ...(opts.server ? ['--server', opts.server] : []), ...args];
    return new Promise((resolve) => {
      const child = execFile(this.info.kubectl, full, { maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err && typeof err.code === 'number' ? err.code : err ? 1 : 0;
        resolve({ stdout, stderr, code });
      });
      if (opts.input !== undefined) child.stdin?.end(opts.input);
    });
  }

  /**
   * Writes the `kubernetes` Endpoints and EndpointSlice in `default` as kube-apiserver's endpoint
   * reconciler would, listing apiservers `ready` (conditions.ready true) and `notReady` (false);
   * both empty writes a slice without endpoints. The listed apiservers must share one port (the
   * default with several apiservers). Unchanged content is not rewritten. Returns the slice's
   * resourceVersion. See kubernetes-endpoints.ts (written into etcd: the API refuses loopback IPs).
   */
  async writeKubernetesEndpoints(o: { ready: readonly number[]; notReady?: readonly number[] }): Promise<string> {
    const listed = [...o.ready.map((i) => ({ i, ready: true })), ...(o.notReady ?? []).map((i) => ({ i, ready: false }))];
    const eps = listed.map(({ i, ready }) => ({ a: this.#apiserver(i), ready }));
    const ports = new Set(eps.map((e) => e.a.port));
    if (ports.size > 1) throw new Error('writeKubernetesEndpoints: the apiservers listed do not share one port (start the cluster with distinctAddresses)');
    if (new Set(eps.map((e) => e.a.host)).size !== eps.length) throw new Error('writeKubernetesEndpoints: an apiserver listed twice, or two on one address');
    const port = eps[0]?.a.port ?? this.#apiserver(0).port;
    return writeReconcilerObjects(etcdKv((path, body) => this.#etcdPost(path, body)), port, eps.map((e) => ({ ip: e.a.host, ready: e.ready })));
  }

  #apiserver(i: number): ApiserverInfo {
    const a = this.info.apiservers[i];
    if (!a) throw new Error(`no apiserver ${i}`);
    return a;
  }

  async #adminRequest(method: 'GET' | 'POST', path: string, body?: unknown): Promise<string> {
    const a = this.#apiserver(0);
    const res = await request(`${a.url}${path}`, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${this.info.users.admin.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300 && res.statusCode !== 409) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
    return text;
  }

  async #bootstrapRbac(): Promise<void> {
    await this.#adminRequest('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } });
    await this.#adminRequest('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'viewer', namespace: 'team-a' },
      rules: [{ apiGroups: [''], resources: ['pods', 'configmaps'], verbs: ['get', 'list', 'watch'] }],
    });
    await this.#adminRequest('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'viewer', namespace: 'team-a' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'viewer' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'viewer' }],
    });
  }

  async #waitEtcd(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!isAlive(this.info.etcd.pid)) throw new Error(`etcd exited; see ${this.info.etcd.logFile}`);
      try {
        const res = await request(`${this.info.etcd.url}/health`);
        const text = await res.body.text();
        if (res.statusCode === 200 && text.includes('true')) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error('etcd not healthy in time');
  }

  async #etcdPost(path: string, body: unknown): Promise<unknown> {
    const res = await request(`${this.info.etcd.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`etcd ${path}: ${res.statusCode} ${text}`);
    return JSON.parse(text) as unknown;
  }
}

function jsonPath(v: unknown, path: string[]): unknown {
  let cur = v;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function apiserverArgs(o: { dir: string; pki: string; host: string; port: number; etcdUrl: string; name: string }): string[] {
  return [
    'apiserver',
    `--etcd-servers=${o.etcdUrl}`,
    `--bind-address=${o.host}`,
    `--advertise-address=${o.host}`,
    `--secure-port=${o.port}`,
    `--cert-dir=${join(o.dir, o.name)}`,
    `--tls-cert-file=${join(o.pki, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(o.pki, 'apiserver.key')}`,
    `--client-ca-file=${join(o.pki, 'ca.crt')}`,
    `--token-auth-file=${join(o.pki, 'tokens.csv')}`,
    '--authorization-mode=Node,RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(o.pki, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(o.pki, 'sa.key')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--disable-admission-plugins=ServiceAccount',
    // A loopback advertise address is refused by the lease reconciler; tests that need the
    // kubernetes Service's endpoints write them with writeKubernetesEndpoints.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    '--v=1',
  ];
}

/** A kubeconfig (JSON is valid YAML) for one user against one server. */
export function kubeconfigFor(info: ClusterInfo, u: UserInfo, server: string, caFile = info.caFile): string {
  const user: Record<string, string> = {};
  if (u.token) user['token'] = u.token;
  if (u.certFile) user['client-certificate'] = u.certFile;
  if (u.keyFile) user['client-key'] = u.keyFile;
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kcluster', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: u.name, user }],
    contexts: [{ name: u.name, context: { cluster: 'kcluster', user: u.name } }],
    'current-context': u.name,
  }, null, 2) + '\n';
}
