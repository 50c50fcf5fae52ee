// The kube-cache-proxy command as operators run it: `node dist/proxy/cli.js …` as a subprocess in front
// of the shared cluster. Flags, --config, startup errors, --write-kubeconfig with kubectl, logs,
// the metrics/health port, and SIGTERM with a watch and a short request in flight.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Agent as UndiciAgent, request } from 'undici';
import { sharedCluster } from '../helpers/env.js';
import { repoRoot } from '../cluster/paths.js';
import { freePort } from '../cluster/processes.js';
import { FLAGS } from '../../proxy/flags.js';
import { waitFor } from '../helpers/wait.js';

const cluster = sharedCluster();
const CLI = join(repoRoot(), 'dist', 'proxy', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'kcp-cli-'));
const apiserver = cluster.info.apiservers[0];
if (!apiserver) throw new Error('the shared cluster has no apiserver');
const users = cluster.info.users;
const adminToken = users.admin.token ?? '';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

// ---------------------------------------------------------------------------------------------
// Running the command

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Date.now() when it exited. */
  readonly at: number;
}

type LogLine = Record<string, unknown>;

class ProxyProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  #stdout = '';
  #stderr = '';
  #exit: Exit | undefined;

  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.#stdout += d; });
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.#stderr += d; });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.#exit = { code, signal, at: Date.now() };
        resolve(this.#exit);
      });
    });
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  get stdout(): string { return this.#stdout; }
  get stderr(): string { return this.#stderr; }
  get exit(): Exit | undefined { return this.#exit; }

  /** stdout as JSON lines (every line must be one). */
  lines(): LogLine[] {
    return this.#stdout.split('\n').filter((l) => l !== '').map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        throw new Error(`stdout line is not JSON: ${l}`);
      }
    });
  }

  /** Waits for a log line matching `pred` (or fails when the process exits first). */
  async waitForLine(pred: (l: LogLine) => boolean, what: string, timeoutMs = 60_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines().find(pred);
      if (hit) return hit;
      if (this.#exit) throw new Error(`exited (${this.#exit.code ?? this.#exit.signal}) before logging ${what}; stderr: ${this.#stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; stdout: ${this.#stdout} stderr: ${this.#stderr}`);
      await sleep(20);
    }
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }
}

const running = new Set<ProxyProcess>();
after(async () => {
  for (const p of running) p.signal('SIGKILL');
  await Promise.all([...running].map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
});

/** Every process's output, for the secrets check at the end. */
const outputs: Array<{ args: readonly string[]; p: ProxyProcess }> = [];

interface Serving {
  readonly p: ProxyProcess;
  readonly url: string;
  readonly metricsUrl: string;
}

/** Starts the command and waits for its "serving" line, which carries the URL (port 0 is fine). */
async function serve(args: readonly string[]): Promise<Serving> {
  const p = new ProxyProcess(args);
  outputs.push({ args, p });
  const line = await p.waitForLine((l) => l['msg'] === 'kube-cache-proxy serving', 'the serving line');
  const url = line['url'];
  const metricsPort = line['metricsPort'];
  assert.equal(typeof url, 'string');
  assert.equal(typeof metricsPort, 'number');
  return { p, url: String(url), metricsUrl: `http://127.0.0.1:${String(metricsPort)}` };
}

/** SIGTERM, then the exit; returns it with how long it took. */
async function terminate(p: ProxyProcess): Promise<Exit & { ms: number }> {
  const t0 = Date.now();
  p.signal('SIGTERM');
  const exit = await p.exited;
  return { ...exit, ms: exit.at - t0 };
}

/** Runs the command to its end (for the ones that must fail at once). */
async function runToEnd(args: readonly string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = new ProxyProcess(args);
  outputs.push({ args, p });
  const timer = setTimeout(() => p.signal('SIGKILL'), timeoutMs);
  const exit = await p.exited;
  clearTimeout(timer);
  return { code: exit.code, stdout: p.stdout, stderr: p.stderr };
}

function kubectl(kubeconfig: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cluster.info.kubectl, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, KUBECONFIG: '' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function httpGet(url: string): Promise<{ status: number; body: string; type: string }> {
  const res = await request(url);
  return { status: res.statusCode, body: await res.body.text(), type: String(res.headers['content-type'] ?? '') };
}

/** The written kubeconfig, parsed, with the few fields the tests look at. */
function readKubeconfig(path: string): { server: string; caPem: string; user: Record<string, unknown>; raw: Record<string, unknown> } {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const clusters = raw['clusters'] as Array<{ cluster: Record<string, unknown> }>;
  const userList = raw['users'] as Array<{ user: Record<string, unknown> }>;
  const c = clusters[0]?.cluster ?? {};
  return {
    server: String(c['server']),
    caPem: Buffer.from(String(c['certificate-authority-data']), 'base64').toString('utf8'),
    user: userList[0]?.user ?? {},
    raw,
  };
}

/** The certificate the proxy presents, as DER. */
function presentedCert(url: string): Promise<Buffer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, servername: '' }, () => {
      const der = s.getPeerCertificate().raw;
      s.destroy();
      resolve(der);
    });
    s.once('error', reject);
  });
}

const requestLines = (p: ProxyProcess) => p.lines().filter((l) => l['msg'] === 'request');

/**
 * The request's log line. It is written just after the response ends, so a client may see the
 * response before the line reaches us: wait for it.
 */
const requestLine = (p: ProxyProcess, method: string, path: string): Promise<LogLine> =>
  p.waitForLine((l) => l['msg'] === 'request' && l['method'] === method && l['path'] === path, `the log line of ${method} ${path}`, 10_000);

/** One line per request at info, with the fields operators rely on. */
function assertRequestLine(l: LogLine, want: { method: string; path: string; status: number; userAgent?: RegExp }): void {
  assert.equal(l['level'], 30, JSON.stringify(l));
  assert.equal(l['method'], want.method, JSON.stringify(l));
  assert.equal(l['path'], want.path, JSON.stringify(l));
  assert.equal(l['status'], want.status, JSON.stringify(l));
  assert.match(String(l['userAgent']), want.userAgent ?? /./, JSON.stringify(l));
  assert.equal(typeof l['latencyMs'], 'number', JSON.stringify(l));
  assert.ok(Number(l['latencyMs']) >= 0, JSON.stringify(l));
  assert.equal(typeof l['bytes'], 'number', JSON.stringify(l));
}

// Secrets that must never reach the output: every user's token, and certificate/key material.
const pemBody = (pem: string): string[] => pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----')).slice(0, 3);
const certTexts = [cluster.info.caFile, users.node1.certFile ?? '', users.node1.keyFile ?? '', cluster.info.servingKeyFile]
  .flatMap((f) => pemBody(readFileSync(f, 'utf8')));
const generatedCertTexts: string[] = [];

function assertNoSecrets(where: string, text: string): void {
  for (const u of Object.values(users)) {
    if (u.token) assert.ok(!text.includes(u.token), `${where}: ${u.name}'s token appears in the output`);
  }
  assert.doesNotMatch(text, /Bearer /i, `${where}: a bearer credential appears in the output`);
  assert.doesNotMatch(text, /-----BEGIN/, `${where}: PEM text appears in the output`);
  for (const t of [...certTexts, ...generatedCertTexts]) assert.ok(!text.includes(t), `${where}: certificate or key text appears in the output`);
}

// ---------------------------------------------------------------------------------------------

test('--help prints every flag and exits 0', { timeout: 30_000 }, async () => {
  for (const flag of ['--help', '-h']) {
    const r = await runToEnd([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    for (const name of Object.keys(FLAGS)) assert.match(r.stdout, new RegExp(`--${name}\\b`), `--${name} missing from --help`);
    assert.match(r.stdout, /-h, --help/);
    assert.match(r.stdout, /^Usage: kube-cache-proxy \[flags\]$/m);
  }
});

test('bad flags, config, kubeconfig, context or busy ports: non-zero exit, one line on stderr naming the problem', { timeout: 120_000 }, async () => {
  const busy = `127.0.0.1:${apiserver.port}`;
  const admin = users.admin.kubeconfig;
  const base = ['--kubeconfig', admin, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'];
  const unknownField = file('unknown-field.yaml', 'listen: "127.0.0.1:0"\nbogus: 1\n');
  const badType = file('bad-type.yaml', 'shutdownGracePeriodSeconds: soon\n');
  const notYaml = file('not-yaml.yaml', 'listen: [":1"\n');
  const busyConfig = file('busy.yaml', `kubeconfig: ${admin}\nlisten: "${busy}"\nmetricsListen: "127.0.0.1:0"\n`);
  const garbage = file('garbage.pem', 'not a certificate\n');
  const badFlow = file('bad-flow.yaml', 'levels:\n  - name: a\n    qps: -1\ndefaultLevel: a\n');
  const badFlowSection = file('bad-flow-section.yaml', 'flowControl:\n  rules:\n    - { name: r, level: missing }\n');
  const cases: Array<[string[], RegExp]> = [
    [['--nope'], /^Unknown option '--nope'/],
    [['serve'], /^Unexpected argument 'serve'/],
    [['--listen'], /^Option '--listen <value>' argument missing/],
    [['--listen', 'nope'], /^--listen: must be host:port, :port or \[ipv6\]:port, got "nope"$/],
    [['--metrics-listen', ':70000'], /^--metrics-listen: port out of range/],
    [['--log-level', 'loud'], /^--log-level: must be one of /],
    [['--shutdown-grace-period', 'soon'], /^--shutdown-grace-period: must be a number of seconds >= 0$/],
    [['--tls-cert-file', cluster.info.servingCertFile], /^--tls-cert-file and --tls-private-key-file must be given together$/],
    [['--kubeconfig='], /^--kubeconfig: must not be empty$/],
    [['--tls-min-version', 'VersionTLS11'], /^--tls-min-version: VersionTLS11 is not supported: TLS 1\.2 is the minimum/],
    [['--tls-cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_3DES_EDE_CBC_SHA'], /^--tls-cipher-suites: cipher suite TLS_RSA_WITH_3DES_EDE_CBC_SHA is insecure and not supported$/],
    [['--config', 'missing.yaml'], /^--config missing\.yaml: ENOENT: no such file or directory/],
    [['--config', unknownField], /^--config .*unknown-field\.yaml: unknown field "bogus" \(known: /],
    [['--config', badType], /^--config .*bad-type\.yaml: field "shutdownGracePeriodSeconds" must be a number of seconds >= 0$/],
    [['--config', notYaml], /^--config .*not-yaml\.yaml: not valid YAML: /],
    [['--flow-control-config', badFlow], /^--flow-control-config .*bad-flow\.yaml: field "flowControl\.levels\[0\]\.qps" must be a number > 0$/],
    [['--flow-control-config', 'missing-flow.yaml'], /^--flow-control-config missing-flow\.yaml: ENOENT/],
    [['--config', badFlowSection], /^--config .*bad-flow-section\.yaml: field "flowControl\.rules\[0\]\.level" no level named "missing"$/],
    [['--kubeconfig', '/nonexistent', '--listen', '127.0.0.1:0'], /^--kubeconfig: ENOENT: no such file or directory, open '\/nonexistent'$/],
    [['--kubeconfig', garbage], /^--kubeconfig: /],
    [[...base, '--context', 'nope'], /^--context: context "nope" not found in the kubeconfig$/],
    [['--kubeconfig', admin, '--listen', busy, '--metrics-listen', '127.0.0.1:0'], new RegExp(`^--listen: .*EADDRINUSE.*${busy}`)],
    [['--kubeconfig', admin, '--listen', '127.0.0.1:0', '--metrics-listen', busy], new RegExp(`^--metrics-listen: .*EADDRINUSE.*${busy}`)],
    // The config file's listen is used (and so fails here) …
    [['--config', busyConfig], new RegExp(`^--listen: .*EADDRINUSE.*${busy}`)],
    [[...base, '--upstream', 'http://127.0.0.1:1'], /^--upstream: only https:\/\/ apiservers are supported/],
    [[...base, '--upstream', 'nope'], /^--upstream: not a URL: nope$/],
    [[...base, '--tls-cert-file', '/nonexistent.crt', '--tls-private-key-file', '/nonexistent.key'], /^--tls-cert-file: ENOENT/],
    [[...base, '--tls-cert-file', garbage, '--tls-private-key-file', cluster.info.servingKeyFile], /^--tls-cert-file: .*no start line/],
    [[...base, '--tls-cert-file', cluster.info.servingCertFile, '--tls-private-key-file', garbage], /^--tls-private-key-file: /],
    [[...base, '--tls-cert-file', cluster.info.servingCertFile, '--tls-private-key-file', users.node1.keyFile ?? ''], /^--tls-cert-file and --tls-private-key-file: .*key values mismatch/],
    [[...base, '--client-ca-file', '/nonexistent-ca.crt'], /^--client-ca-file: ENOENT/],
    [[...base, '--client-ca-file', garbage], /^--client-ca-file: no PEM certificate in /],
    [[...base, '--write-kubeconfig', '/nonexistent-dir/out.kubeconfig'], /^--write-kubeconfig: ENOENT/],
  ];
  // A few at a time: each one is a whole Node process, and the machine may be busy with other tests.
  const results: Array<{ args: string[]; msg: RegExp; r: Awaited<ReturnType<typeof runToEnd>> }> = [];
  const queue = [...cases];
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let c = queue.shift(); c; c = queue.shift()) results.push({ args: c[0], msg: c[1], r: await runToEnd(c[0]) });
  }));
  for (const { args, msg, r } of results) {
    const what = `kube-cache-proxy ${args.join(' ')}`;
    assert.notEqual(r.code, 0, `${what}: exit code`);
    assert.notEqual(r.code, null, `${what}: killed instead of exiting`);
    assert.match(r.stderr, /^[^\n]+\n$/, `${what}: stderr is not exactly one line: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr.trimEnd(), msg, what);
    assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, `${what}: stack trace`);
    for (const l of r.stdout.split('\n').filter((x) => x !== '')) assert.doesNotThrow(() => JSON.parse(l), `${what}: non-JSON stdout ${l}`);
  }
  // … and a flag overrides it.
  const s = await serve(['--config', busyConfig, '--listen', '127.0.0.1:0']);
  assert.notEqual(new URL(s.url).port, String(apiserver.port));
  assert.equal((await terminate(s.p)).code, 0);
});

test('self-signed serving certificate, --write-kubeconfig, kubectl through the proxy with TLS verification; logs and metrics port', { timeout: 90_000 }, async () => {
  const metricsPort = await freePort();
  const out = join(dir, 'admin-proxy.kubeconfig');
  // An existing, world-readable file is replaced by one only the owner can read.
  writeFileSync(out, 'stale\n', { mode: 0o644 });
  chmodSync(out, 0o644);
  // At the most verbose level, so that the secrets check at the end covers everything the proxy can log.
  const s = await serve(['--kubeconfig', users.admin.kubeconfig, '--listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${metricsPort}`, '--write-kubeconfig', out, '--log-level', 'trace']);
  assert.equal(s.metricsUrl, `http://127.0.0.1:${metricsPort}`);
  assert.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(s.p.lines().some((l) => /self-signed certificate/.test(String(l['msg']))), 'the generated certificate is announced');

  // The written kubeconfig: the proxy's URL, its certificate as the only trust, the source's credentials.
  assert.equal(statSync(out).mode & 0o777, 0o600);
  const kc = readKubeconfig(out);
  assert.equal(kc.server, s.url);
  assert.equal(kc.user['token'], adminToken);
  assert.equal(JSON.stringify(kc.raw).includes('insecure-skip-tls-verify'), false);
  const written = new X509Certificate(kc.caPem);
  assert.deepEqual(written.raw, await presentedCert(s.url), 'the kubeconfig trusts exactly the certificate the proxy serves');
  assert.ok(written.checkIP('127.0.0.1'), 'the generated certificate covers 127.0.0.1');
  generatedCertTexts.push(...pemBody(kc.caPem));

  const ns = await kubectl(out, ['get', 'ns', '-o', 'name']);
  assert.equal(ns.code, 0, ns.stderr);
  assert.match(ns.stdout, /^namespace\/default$/m);
  assert.match(ns.stdout, /^namespace\/team-a$/m);
  const whoami = await kubectl(out, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  assert.equal(whoami.code, 0, whoami.stderr);
  assert.equal(whoami.stdout, 'admin');
  // Verification is real: the cluster CA does not vouch for the proxy's generated certificate.
  const untrusted = await kubectl(users.admin.kubeconfig, ['--server', s.url, 'get', 'ns']);
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /certificate|x509/i);
  // A denied request is logged like any other.
  const denied = await kubectl(out, ['--token', users.nobody.token ?? '', 'get', 'secrets', '-n', 'kube-system']);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /forbidden/i);

  // One info line per request, with method, path, userAgent, status, latencyMs, bytes.
  const list = await requestLine(s.p, 'GET', '/api/v1/namespaces');
  assertRequestLine(list, { method: 'GET', path: '/api/v1/namespaces', status: 200, userAgent: /^kubectl\// });
  assert.ok(Number(list['bytes']) > 100);
  const review = await requestLine(s.p, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews');
  assertRequestLine(review, { method: 'POST', path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', status: 201, userAgent: /^kubectl\// });
  const forbidden = await requestLine(s.p, 'GET', '/api/v1/namespaces/kube-system/secrets');
  assertRequestLine(forbidden, { method: 'GET', path: '/api/v1/namespaces/kube-system/secrets', status: 403, userAgent: /^kubectl\// });
  assert.equal(requestLines(s.p).filter((l) => l['path'] === '/api/v1/namespaces').length, 1, 'one line for the one LIST');
  // Exactly one line per request: a raw request and its line.
  const before = requestLines(s.p).length;
  const caAgent = new HttpsAgent({ ca: kc.caPem });
  const r = await new Promise<IncomingMessage>((resolve, reject) => {
    httpsRequest(`${s.url}/version?x=1`, { agent: caAgent, headers: { authorization: `Bearer ${adminToken}`, 'user-agent': 'cli-test/1' } }, resolve).on('error', reject).end();
  });
  let versionBytes = 0;
  for await (const chunk of r) versionBytes += (chunk as Buffer).length;
  caAgent.destroy();
  assert.equal(r.statusCode, 200);
  await requestLine(s.p, 'GET', '/version');
  await sleep(200);
  const added = requestLines(s.p).slice(before);
  assert.equal(added.length, 1, JSON.stringify(added));
  assertRequestLine(added[0] ?? {}, { method: 'GET', path: '/version', status: 200, userAgent: /^cli-test\/1$/ });
  assert.equal(added[0]?.['bytes'], versionBytes);

  // The metrics/health port.
  for (const path of ['/healthz', '/livez', '/readyz']) {
    const h = await httpGet(`${s.metricsUrl}${path}`);
    assert.equal(h.status, 200, path);
    assert.equal(h.body, 'ok', path);
  }
  assert.equal((await httpGet(`${s.metricsUrl}/nope`)).status, 404);
  const m = await httpGet(`${s.metricsUrl}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain/);
  assert.match(m.body, /^kube_cache_proxy_requests_total\{verb="list",resource="namespaces",code="200",source="(cache|upstream)"\} [1-9]/m);
  assert.match(m.body, /^kube_cache_proxy_requests_total\{verb="get",resource="",code="200",source="upstream"\} [1-9]/m);
  assert.match(m.body, /^kube_cache_proxy_requests_total\{verb="list",resource="secrets",code="403",source="upstream"\} 1$/m);
  assert.match(m.body, /^kube_cache_proxy_request_duration_seconds_count\{verb="list",resource="namespaces",source="(cache|upstream)"\} [1-9]/m);
  assert.match(m.body, /^kube_cache_proxy_inflight_requests\{kind="long_running"\} 0$/m);
  assert.match(m.body, /^process_cpu_seconds_total /m);

  const exit = await terminate(s.p);
  assert.equal(exit.code, 0, s.p.stderr);
  assert.equal(s.p.stderr, '');
  assert.ok(s.p.lines().some((l) => l['msg'] === 'stopped'));
});

test('a client-certificate context with --client-ca-file: the written kubeconfig carries the certificate, whoami is the node', { timeout: 60_000 }, async () => {
  const out = join(dir, 'node1-proxy.kubeconfig');
  const s = await serve(['--kubeconfig', users.node1.kubeconfig, '--client-ca-file', cluster.info.caFile, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--write-kubeconfig', out]);
  const kc = readKubeconfig(out);
  generatedCertTexts.push(...pemBody(kc.caPem));
  assert.equal(kc.server, s.url);
  const certFile = kc.user['client-certificate'];
  const keyFile = kc.user['client-key'];
  assert.equal(typeof certFile, 'string');
  assert.equal(typeof keyFile, 'string');
  assert.equal(readFileSync(String(certFile), 'utf8'), readFileSync(users.node1.certFile ?? '', 'utf8'));
  assert.equal(kc.user['token'], undefined);

  const whoami = await kubectl(out, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.groups}']);
  assert.equal(whoami.code, 0, whoami.stderr);
  assert.equal(whoami.stdout, 'system:node:node-1 ["system:nodes","system:authenticated"]');
  // The node authorizer applies, as it does straight to the apiserver.
  const [viaProxy, direct] = await Promise.all([
    kubectl(out, ['get', 'secrets', '-n', 'kube-system']),
    kubectl(users.node1.kubeconfig, ['get', 'secrets', '-n', 'kube-system']),
  ]);
  assert.notEqual(viaProxy.code, 0);
  assert.equal(viaProxy.stderr, direct.stderr);
  const review = await requestLine(s.p, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews');
  assert.equal(review['user'], 'system:node:node-1');
  assert.equal(review['status'], 201);
  const exit = await terminate(s.p);
  assert.equal(exit.code, 0, s.p.stderr);
});

test('a kubeconfig given by a relative path, with relative certificate paths: the written kubeconfig still works elsewhere', { timeout: 60_000 }, async () => {
  // The proxy runs in `dir`; its kubeconfig is relkc/node.kubeconfig naming node.crt and node.key beside it.
  mkdirSync(join(dir, 'relkc'), { recursive: true });
  mkdirSync(join(dir, 'written'), { recursive: true });
  copyFileSync(users.node1.certFile ?? '', join(dir, 'relkc', 'node.crt'));
  copyFileSync(users.node1.keyFile ?? '', join(dir, 'relkc', 'node.key'));
  const source = JSON.parse(readFileSync(users.node1.kubeconfig, 'utf8')) as { users: Array<{ user: Record<string, string> }> };
  for (const u of source.users) {
    u.user['client-certificate'] = 'node.crt';
    u.user['client-key'] = 'node.key';
  }
  writeFileSync(join(dir, 'relkc', 'node.kubeconfig'), JSON.stringify(source));
  const s = await serve(['--kubeconfig', 'relkc/node.kubeconfig', '--client-ca-file', cluster.info.caFile, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--write-kubeconfig', 'written/proxy.kubeconfig']);
  const out = join(dir, 'written', 'proxy.kubeconfig');
  const kc = readKubeconfig(out);
  generatedCertTexts.push(...pemBody(kc.caPem));
  assert.equal(kc.user['client-certificate'], join(dir, 'relkc', 'node.crt'));
  assert.equal(kc.user['client-key'], join(dir, 'relkc', 'node.key'));
  const whoami = await kubectl(out, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  assert.equal(whoami.code, 0, whoami.stderr);
  assert.equal(whoami.stdout, 'system:node:node-1');
  assert.equal((await terminate(s.p)).code, 0, s.p.stderr);
});

test('--listen with a host name: the generated certificate covers it, so the written kubeconfig verifies', { timeout: 60_000 }, async (t) => {
  // A name other than localhost and this host's name (both always in the certificate) that is loopback here.
  let name: string | undefined;
  for (const candidate of ['localhost.localdomain', 'ip6-localhost', 'ip6-loopback', 'runsc', 'vm', 'localhost4', 'localhost6']) {
    if (candidate === hostname().toLowerCase()) continue;
    const addrs = await lookup(candidate, { all: true }).catch(() => []);
    if (addrs.length > 0 && addrs.every((a) => a.address === '127.0.0.1' || a.address === '::1')) {
      name = candidate;
      break;
    }
  }
  if (name === undefined) {
    t.skip('no loopback host name other than localhost and the host name resolves here');
    return;
  }
  const out = join(dir, 'hostname.kubeconfig');
  const s = await serve(['--kubeconfig', users.admin.kubeconfig, '--listen', `${name}:0`, '--metrics-listen', '127.0.0.1:0', '--write-kubeconfig', out]);
  assert.equal(new URL(s.url).hostname, name);
  const kc = readKubeconfig(out);
  generatedCertTexts.push(...pemBody(kc.caPem));
  assert.equal(new X509Certificate(kc.caPem).checkHost(name), name);
  const ns = await kubectl(out, ['get', 'ns', 'default', '-o', 'name']);
  assert.equal(ns.code, 0, ns.stderr);
  assert.equal((await terminate(s.p)).code, 0, s.p.stderr);
});

test('--config YAML works like the flags', { timeout: 60_000 }, async () => {
  const metricsPort = await freePort();
  const out = join(dir, 'config-proxy.kubeconfig');
  const cfg = file('proxy.yaml', [
    '# kube-cache-proxy, configured by file',
    `kubeconfig: ${users.admin.kubeconfig}`,
    'context: admin',
    `upstreams: ["${apiserver.url}"]`,
    'listen: "127.0.0.1:0"',
    `metricsListen: "127.0.0.1:${metricsPort}"`,
    `writeKubeconfig: ${out}`,
    'logLevel: debug',
    'shutdownGracePeriodSeconds: 3',
    '',
  ].join('\n'));
  const s = await serve(['--config', cfg]);
  assert.equal(s.metricsUrl, `http://127.0.0.1:${metricsPort}`);
  const serving = s.p.lines().find((l) => l['msg'] === 'kube-cache-proxy serving');
  assert.deepEqual(serving?.['upstreams'], [apiserver.url]);
  const kc = readKubeconfig(out);
  generatedCertTexts.push(...pemBody(kc.caPem));
  assert.equal(kc.server, s.url);
  const ns = await kubectl(out, ['get', 'ns', 'team-a', '-o', 'name']);
  assert.equal(ns.code, 0, ns.stderr);
  assert.equal(ns.stdout, 'namespace/team-a\n');
  assertRequestLine(await requestLine(s.p, 'GET', '/api/v1/namespaces/team-a'), { method: 'GET', path: '/api/v1/namespaces/team-a', status: 200 });
  assert.equal((await httpGet(`${s.metricsUrl}/readyz`)).status, 200);
  const exit = await terminate(s.p);
  assert.equal(exit.code, 0, s.p.stderr);
  // --log-level from the file: nothing below info is refused, and silent really is silent.
  const quietMetrics = await freePort();
  const quiet = file('quiet.yaml', `kubeconfig: ${users.admin.kubeconfig}\nlisten: "127.0.0.1:0"\nmetricsListen: "127.0.0.1:${quietMetrics}"\nlogLevel: silent\n`);
  const q = new ProxyProcess(['--config', quiet]);
  outputs.push({ args: ['--config', quiet], p: q });
  await waitFor('the silent proxy to be ready', async () => {
    if (q.exit) throw new Error(`exited: ${q.stderr}`);
    return (await httpGet(`http://127.0.0.1:${quietMetrics}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined;
  }, 30_000);
  assert.equal(q.stdout, '');
  assert.equal((await terminate(q)).code, 0);
});

test('SIGHUP reloads --flow-control-config: new limits at once, a refused file logged with its field, the process keeps serving', { timeout: 60_000 }, async () => {
  const flow = (qps: number) => `levels:\n  - { name: tight, qps: ${qps}, burst: 1, queue: { length: 0 } }\n  - { name: default }\nrules:\n  - { name: versions, level: tight, nonResourceURLs: ["/version"] }\ndefaultLevel: default\n`;
  const fcFile = file('flow-sighup.yaml', flow(1000));
  const s = await serve(['--kubeconfig', users.admin.kubeconfig, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--flow-control-config', fcFile]);
  // The generated certificate is not what this test is about.
  const agent = new UndiciAgent({ connect: { rejectUnauthorized: false } });
  const httpsGet = async (base: string, path: string) => {
    const r = await request(`${base}${path}`, { dispatcher: agent, headers: { authorization: `Bearer ${users.admin.token ?? ''}` } });
    await r.body.text();
    return { status: r.statusCode };
  };
  assert.equal((await httpsGet(s.url, '/version')).status, 200);
  // The file watcher would see this too; SIGHUP applies it at once.
  writeFileSync(fcFile, flow(0.001));
  s.p.signal('SIGHUP');
  await s.p.waitForLine((l) => l['msg'] === 'flow-control configuration reloaded', 'the reload line', 10_000);
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await httpsGet(s.url, '/version')).status);
  assert.deepEqual(statuses.slice(1), [429, 429], `after the reload: ${statuses.join(',')}`);
  writeFileSync(fcFile, flow(1000).replace('name: tight, qps: 1000', 'name: tight, qps: fast'));
  s.p.signal('SIGHUP');
  const refused = await s.p.waitForLine((l) => l['msg'] === 'flow-control configuration refused; the previous one stays in force', 'the refusal line', 10_000);
  assert.match(String(refused['err']), /field "flowControl\.levels\[0\]\.qps" must be a number > 0/);
  assert.equal((await httpsGet(s.url, '/version')).status, 429, 'the configuration in force stayed');
  assert.equal(s.p.exit, undefined, 'SIGHUP must not stop the proxy');
  await agent.close();
  assert.equal((await terminate(s.p)).code, 0);
});

// ---------------------------------------------------------------------------------------------
// SIGTERM

interface Watch {
  readonly res: IncomingMessage;
  readonly events: string[];
  /** Resolves to how the response ended: 'end' (complete), or the error/abort. */
  readonly ended: Promise<{ how: string; at: number; complete: boolean }>;
}

function openWatch(url: string, ca: string, path: string): Promise<Watch> {
  return new Promise((resolve, reject) => {
    const agent = new HttpsAgent({ ca, keepAlive: true });
    const req = httpsRequest(`${url}${path}`, { agent, headers: { authorization: `Bearer ${adminToken}`, accept: 'application/json' } }, (res) => {
      const events: string[] = [];
      let buf = '';
      const ended = new Promise<{ how: string; at: number; complete: boolean }>((done) => {
        const finish = (how: string) => done({ how, at: Date.now(), complete: res.complete });
        res.on('data', (d: Buffer) => {
          buf += d.toString('utf8');
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            events.push(buf.slice(0, i));
            buf = buf.slice(i + 1);
          }
        });
        res.once('end', () => finish('end'));
        res.once('aborted', () => finish('aborted'));
        res.once('error', (err) => finish(`error: ${err.message}`));
        req.once('error', (err) => finish(`request error: ${err.message}`));
      });
      void ended.then(() => agent.destroy());
      resolve({ res, events, ended });
    });
    req.once('error', reject);
    req.end();
  });
}

/** A POST whose body the client sends in two halves, so that it stays in flight as long as we like. */
function slowPost(url: string, ca: string, path: string, body: string): { req: ClientRequest; finish(): void; response: Promise<{ status: number; body: string } | { error: string }> } {
  const agent = new HttpsAgent({ ca });
  const req = httpsRequest(`${url}${path}`, {
    method: 'POST', agent,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
  });
  const response = new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    req.once('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString('utf8'); });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.once('error', (err) => resolve({ error: err.message }));
    });
    req.once('error', (err) => resolve({ error: err.message }));
  });
  void response.then(() => agent.destroy());
  const half = Math.floor(body.length / 2);
  req.write(body.slice(0, half));
  req.flushHeaders();
  return { req, finish: () => req.end(body.slice(half)), response };
}

test('SIGTERM: the watch ends cleanly at once, /readyz turns 503, the short request finishes, exit 0 within the grace period', { timeout: 90_000 }, async () => {
  const grace = 15;
  const out = join(dir, 'sigterm.kubeconfig');
  const s = await serve(['--kubeconfig', users.admin.kubeconfig, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--write-kubeconfig', out, '--shutdown-grace-period', String(grace)]);
  const ca = readKubeconfig(out).caPem;
  generatedCertTexts.push(...pemBody(ca));

  const watch = await openWatch(s.url, ca, '/api/v1/namespaces/default/configmaps?watch=true');
  assert.equal(watch.res.statusCode, 200);
  assert.equal(watch.res.headers['transfer-encoding'], 'chunked');
  // The watch is live: an object created straight at the apiserver shows up on it.
  const name = `sigterm-${Date.now().toString(36)}`;
  const created = await kubectl(users.admin.kubeconfig, ['create', 'configmap', name, '-n', 'default', '--from-literal=a=1']);
  assert.equal(created.code, 0, created.stderr);
  await waitFor('the ADDED event', () => (watch.events.some((e) => e.includes('"ADDED"') && e.includes(name)) ? true : undefined));

  // A short request in flight: its body is only half sent.
  const postName = `${name}-post`;
  const post = slowPost(s.url, ca, '/api/v1/namespaces/default/configmaps', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: postName }, data: { k: 'v'.repeat(64) } }));
  const metrics = async () => (await httpGet(`${s.metricsUrl}/metrics`)).body;
  await waitFor('the POST in flight', async () => (/^kube_cache_proxy_inflight_requests\{kind="short"\} 1$/m.test(await metrics()) ? true : undefined));
  assert.match(await metrics(), /^kube_cache_proxy_inflight_requests\{kind="long_running"\} 1$/m);
  // Ready before the signal (the cache's first LISTs may take a few seconds on a busy cluster).
  await waitFor('ready', async () => ((await httpGet(`${s.metricsUrl}/readyz`)).status === 200 ? true : undefined));

  const t0 = Date.now();
  s.p.signal('SIGTERM');

  // The watch ends at once, and cleanly: the chunked stream terminates, no reset.
  const ended = await watch.ended;
  assert.equal(ended.how, 'end', `the watch ended with ${ended.how}`);
  assert.equal(ended.complete, true);
  assert.ok(ended.at - t0 < 5_000, `the watch took ${ended.at - t0} ms to end`);
  for (const e of watch.events) assert.doesNotThrow(() => JSON.parse(e), `a partial watch event: ${e}`);

  // Draining: not ready, still alive, new connections not accepted.
  const readyz = await httpGet(`${s.metricsUrl}/readyz`);
  assert.equal(readyz.status, 503);
  assert.match(readyz.body, /shutting down/);
  assert.equal((await httpGet(`${s.metricsUrl}/healthz`)).status, 200);
  assert.equal(s.p.exit, undefined, 'exited while a short request was in flight');
  const lateAgent = new UndiciAgent({ connect: { ca } });
  const late = await request(`${s.url}/version`, { dispatcher: lateAgent }).then(
    async (r) => { await r.body.dump(); return `status ${r.statusCode}`; },
    (err: unknown) => `error ${String((err as { code?: unknown }).code ?? err)}`,
  );
  await lateAgent.close();
  assert.match(late, /ECONNREFUSED|status 503/, late);

  // The short request completes within the grace period, then the process exits 0.
  await sleep(300);
  assert.equal(s.p.exit, undefined, 'exited while a short request was in flight');
  post.finish();
  const res = await post.response;
  assert.ok('status' in res, `the POST failed: ${JSON.stringify(res)}`);
  assert.equal(res.status, 201, res.body);
  const exit = await s.p.exited;
  assert.equal(exit.code, 0, s.p.stderr);
  assert.ok(exit.at - t0 < grace * 1000, `exit took ${exit.at - t0} ms`);
  assert.equal(s.p.stderr, '');
  const msgs = s.p.lines().map((l) => l['msg']);
  assert.ok(msgs.includes('shutting down') && msgs.includes('stopped'), JSON.stringify(msgs));
  const postLine = requestLines(s.p).find((l) => l['method'] === 'POST');
  assert.equal(postLine?.['status'], 201);
  const watchLine = requestLines(s.p).find((l) => String(l['path']).endsWith('/configmaps') && l['method'] === 'GET');
  assert.equal(watchLine?.['status'], 200);

  await kubectl(users.admin.kubeconfig, ['delete', 'configmap', name, postName, '-n', 'default', '--wait=false']);
});

test('SIGTERM with --shutdown-grace-period 0: watches still end cleanly, exit 0 at once', { timeout: 60_000 }, async () => {
  const out = join(dir, 'sigterm-zero.kubeconfig');
  const s = await serve(['--kubeconfig', users.admin.kubeconfig, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--write-kubeconfig', out, '--shutdown-grace-period', '0']);
  const ca = readKubeconfig(out).caPem;
  generatedCertTexts.push(...pemBody(ca));
  const watches = await Promise.all(['default', 'team-a', 'kube-system'].map((ns) => openWatch(s.url, ca, `/api/v1/namespaces/${ns}/configmaps?watch=true`)));
  for (const w of watches) assert.equal(w.res.statusCode, 200);
  const exit = await terminate(s.p);
  assert.equal(exit.code, 0, s.p.stderr);
  assert.ok(exit.ms < 5_000, `exited after ${exit.ms} ms`);
  for (const w of watches) {
    const ended = await w.ended;
    assert.equal(ended.how, 'end', `a watch ended with ${ended.how}`);
  }
});

test('SIGTERM: a short request still running after the grace period is cut, and the exit is still 0', { timeout: 60_000 }, async () => {
  const out = join(dir, 'sigterm-cut.kubeconfig');
  const s = await serve(['--kubeconfig', users.admin.kubeconfig, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--write-kubeconfig', out, '--shutdown-grace-period', '1']);
  const ca = readKubeconfig(out).caPem;
  generatedCertTexts.push(...pemBody(ca));
  const post = slowPost(s.url, ca, '/api/v1/namespaces/default/configmaps', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'never-created' } }));
  await waitFor('the POST in flight', async () => (/^kube_cache_proxy_inflight_requests\{kind="short"\} 1$/m.test((await httpGet(`${s.metricsUrl}/metrics`)).body) ? true : undefined));
  const exit = await terminate(s.p);
  assert.equal(exit.code, 0, s.p.stderr);
  assert.ok(exit.ms >= 900, `exited after ${exit.ms} ms, before the grace period`);
  assert.ok(exit.ms < 5_000, `exited after ${exit.ms} ms`);
  const res = await post.response;
  assert.ok('error' in res, `the cut request got an answer: ${JSON.stringify(res)}`);
  assert.equal(s.p.stderr, '');
});

test('no token, certificate or key text in any output', () => {
  assert.ok(outputs.length > 10);
  for (const { args, p } of outputs) assertNoSecrets(`kube-cache-proxy ${args.join(' ')}`, p.stdout + p.stderr);
});
