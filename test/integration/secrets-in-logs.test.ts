// No credential and no Secret's data ever leaves the proxy through its own outputs. The command as
// users run it (`node dist/proxy/cli.js`, --log-level trace, Secrets cached, --client-ca-file so
// certificate clients are impersonated), once per --authorization-mode, in front of the shared
// cluster through a TCP relay (so the apiserver can "go away" without disturbing other tests), under
// a varied load: kubectl and raw HTTP, reads (cached and consistent), watches and writes of Secrets
// whose data carries a marker, ServiceAccount tokens made by TokenRequest for the test, a bad token,
// client certificates (one allowed, one refused), errors (404, 409, 400, 401, 403), a client's own
// TokenReview, and an upstream outage (connections cut and refused) with requests in flight.
// Then every output is collected — the proxy's stdout and stderr, its /metrics and /readyz?verbose
// text, every error body a client got and kubectl's stderr — and searched for each token used (and
// its first 20 characters), each client certificate and private key (base64 DER/PEM body, and the
// kubeconfig's base64 of the PEM), the proxy's own token/certificate/key, and the Secrets' data
// (base64 and decoded). Any hit fails, naming the output and the secret.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { sharedCluster } from '../helpers/env.js';
import { TcpRelay } from '../helpers/tcp-relay.js';
import { repoRoot } from '../cluster/paths.js';
import { waitFor } from '../helpers/wait.js';

const cluster = sharedCluster();
const CLI = join(repoRoot(), 'dist', 'proxy', 'cli.js');
const apiserver = cluster.info.apiservers[0];
if (!apiserver) throw new Error('the shared cluster has no apiserver');
const direct = apiserver.url;
const ca = readFileSync(cluster.info.caFile);
const dir = mkdtempSync(join(tmpdir(), 'kcp-secrets-'));
const run = randomBytes(4).toString('hex');
const ns = `secrets-logs-${run}`;
const MARKER = `kcp-marker-${run}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// What must never appear, and where we look.

const needles: Array<{ what: string; text: string }> = [];
const secret = (what: string, text: string) => {
  if (text.length >= 12) needles.push({ what, text });
};
const token = (what: string, t: string) => {
  secret(`${what} token`, t);
  // A ServiceAccount token is a JWT: its first 20 characters are the header every JWT of the
  // cluster shares (any JWT in an output is a hit); its last 20 are its own signature.
  secret(`${what} token (first 20 characters)`, t.slice(0, 20));
  secret(`${what} token (last 20 characters)`, t.slice(-20));
};
/** A PEM file's material: its whole base64 body, each full line of it, and the base64 of the PEM (a kubeconfig's *-data). */
const pem = (what: string, text: string) => {
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  secret(`${what} (base64 body)`, lines.join(''));
  for (const l of lines) if (l.length >= 40) secret(`${what} (a PEM line)`, l);
  secret(`${what} (kubeconfig base64)`, Buffer.from(text).toString('base64').slice(0, 64));
};
const secretValue = (what: string, value: string) => {
  secret(`${what} (decoded)`, value);
  secret(`${what} (base64)`, Buffer.from(value).toString('base64'));
};
secret('the Secrets\' marker', MARKER);

const outputs: Array<{ where: string; text: string }> = [];
const collect = (where: string, text: string) => outputs.push({ where, text });

// ---------------------------------------------------------------------------------------------
// Setup through the apiserver directly, as admin.

const adminAgent = new Agent({ connect: { ca } });
const admin = { authorization: `Bearer ${cluster.info.users.admin.token ?? ''}` };
token('admin (static)', cluster.info.users.admin.token ?? '');

async function adminCall(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
  const r = await request(`${direct}${path}`, { method, headers: { ...admin, 'content-type': 'application/json' }, dispatcher: adminAgent, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.body.text();
  assert.ok(r.statusCode < 300, `${method} ${path}: ${r.statusCode} ${text}`);
  return JSON.parse(text) as unknown;
}

/** A ServiceAccount and a token for it (TokenRequest); bound to `role` (a Role of the namespace, or a ClusterRole cluster-wide). */
async function saToken(name: string, role?: string, namespaced = true): Promise<string> {
  await adminCall('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name } });
  if (role) {
    const subjects = [{ kind: 'ServiceAccount', name, namespace: ns }];
    const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: namespaced ? 'Role' : 'ClusterRole', name: role };
    if (namespaced) await adminCall('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, { metadata: { name }, roleRef, subjects });
    else await adminCall('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { metadata: { name: `${ns}-${name}` }, roleRef, subjects });
  }
  const r = await adminCall('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
  const t = (r as { status?: { token?: unknown } }).status?.token;
  assert.equal(typeof t, 'string');
  token(`ServiceAccount ${name}`, t as string);
  return t as string;
}

/** A client certificate from the cluster CA (kcluster pki cert). */
function issue(name: string, cn: string, org: string): Promise<{ cert: string; key: string; certFile: string; keyFile: string }> {
  const out = join(dir, name);
  return new Promise((resolve, reject) => {
    execFile(cluster.info.kcluster, ['pki', 'cert', '--ca', join(cluster.info.dir, 'pki', 'ca'), '--out', out, '--cn', cn, '--org', org, '--client'], (err) => {
      if (err) return reject(err);
      const c = { cert: readFileSync(`${out}.crt`, 'utf8'), key: readFileSync(`${out}.key`, 'utf8'), certFile: `${out}.crt`, keyFile: `${out}.key` };
      pem(`${name} certificate`, c.cert);
      pem(`${name} private key`, c.key);
      resolve(c);
    });
  });
}

after(async () => {
  for (const p of running) p.kill('SIGKILL');
  await adminCall('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
  for (const n of ['proxy']) await adminCall('DELETE', `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${ns}-${n}`).catch(() => undefined);
  await adminAgent.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The command.

const running = new Set<ChildProcess>();

interface Proxy {
  readonly url: string;
  readonly metricsUrl: string;
  /** SIGTERM, the exit; stdout and stderr. */
  stop(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

async function startCli(args: readonly string[]): Promise<Proxy> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => { running.delete(child); resolve(code); }));
  let serving: Record<string, unknown> | undefined;
  await waitFor('the serving line', () => {
    if (child.exitCode !== null) throw new Error(`exited: ${stderr}`);
    serving = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'kube-cache-proxy serving');
    return serving;
  }, 60_000);
  const metricsUrl = `http://127.0.0.1:${String(serving?.['metricsPort'])}`;
  await ready(metricsUrl);
  return {
    url: String(serving?.['url']),
    metricsUrl,
    stop: async () => {
      child.kill('SIGTERM');
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
}

async function ready(metricsUrl: string): Promise<void> {
  await waitFor('/readyz', async () => {
    const r = await request(`${metricsUrl}/readyz`);
    await r.body.dump();
    return r.statusCode === 200 ? true : undefined;
  }, 60_000);
}

function kubectl(kubeconfig: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cluster.info.kubectl, ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, KUBECONFIG: '' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function kubeconfigFor(server: string, user: Record<string, string>): string {
  const file = join(dir, `kc-${randomBytes(3).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority': cluster.info.caFile } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
  }), { mode: 0o600 });
  return file;
}

// ---------------------------------------------------------------------------------------------

interface Client {
  readonly name: string;
  readonly headers: Record<string, string>;
  readonly agent: Agent;
}

test('no token, certificate, key or Secret data in the logs, metrics or error bodies, in both authorization modes', { timeout: 300_000 }, async (t) => {
  await adminCall('POST', '/api/v1/namespaces', { metadata: { name: ns } });
  // Not the aggregated `edit` (no controller-manager aggregates it here): a Role of the test's own.
  await adminCall('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
    metadata: { name: 'secrets' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] }],
  });
  await adminCall('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
    metadata: { name: 'cert-reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secrets' },
    subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: `kcp-cert-readers-${run}` }],
  });
  for (let i = 0; i < 3; i++) {
    const value = `${MARKER}-seed-${i}-${randomBytes(8).toString('hex')}`;
    secretValue(`seed Secret ${i}`, value);
    await adminCall('POST', `/api/v1/namespaces/${ns}/secrets`, { metadata: { name: `seed-${i}` }, data: { value: Buffer.from(value).toString('base64') } });
  }
  const readerToken = await saToken('reader', 'secrets');
  const nobodyToken = await saToken('nobody');
  const proxyToken = await saToken('proxy', 'cluster-admin', false);
  const badToken = `kcp-bad-${randomBytes(24).toString('hex')}`;
  token('bad', badToken);
  const certReader = await issue('cert-reader', `cert-reader-${run}`, `kcp-cert-readers-${run}`);
  const proxyCert = await issue('proxy-cert', `kcp-secrets-proxy-${run}`, 'system:masters');
  const node1 = { cert: readFileSync(cluster.info.users.node1.certFile ?? '', 'utf8'), key: readFileSync(cluster.info.users.node1.keyFile ?? '', 'utf8') };
  pem('node-1 certificate', node1.cert);
  pem('node-1 private key', node1.key);
  pem('the proxy\'s serving key', readFileSync(cluster.info.servingKeyFile, 'utf8'));

  const relay = await TcpRelay.start({ host: new URL(direct).hostname, port: apiserver.port });
  t.after(() => relay.close());
  const tokenAgent = new Agent({ connect: { ca } });
  const clients: Client[] = [
    { name: 'admin', headers: admin, agent: tokenAgent },
    { name: 'reader', headers: { authorization: `Bearer ${readerToken}` }, agent: tokenAgent },
    { name: 'nobody', headers: { authorization: `Bearer ${nobodyToken}` }, agent: tokenAgent },
    { name: 'bad-token', headers: { authorization: `Bearer ${badToken}` }, agent: tokenAgent },
    { name: 'cert-reader', headers: {}, agent: new Agent({ connect: { ca, cert: certReader.cert, key: certReader.key } }) },
    { name: 'node-1', headers: {}, agent: new Agent({ connect: { ca, cert: node1.cert, key: node1.key } }) },
  ];
  t.after(() => Promise.all(clients.map((c) => c.agent.close())));

  const modes: Array<{ mode: string; user: Record<string, string> }> = [
    { mode: 'probe', user: { 'client-certificate-data': Buffer.from(proxyCert.cert).toString('base64'), 'client-key-data': Buffer.from(proxyCert.key).toString('base64') } },
    { mode: 'local', user: { token: proxyToken } },
  ];
  for (const { mode, user } of modes) {
    const proxyKubeconfig = kubeconfigFor(direct, user);
    const p = await startCli([
      '--kubeconfig', proxyKubeconfig, '--upstream', relay.url, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0',
      '--tls-cert-file', cluster.info.servingCertFile, '--tls-private-key-file', cluster.info.servingKeyFile, '--client-ca-file', cluster.info.caFile,
      '--log-level', 'trace', '--authorization-mode', mode, '--cache-resources', 'secrets,configmaps,namespaces,pods',
    ]);
    let requests = 0;
    let errors = 0;
    /** A raw request as `c`; an error answer's body is collected. */
    const send = async (c: Client, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: string): Promise<number> => {
      requests++;
      try {
        const r = await request(`${p.url}${path}`, { method, headers: { ...c.headers, 'content-type': 'application/json' }, body, dispatcher: c.agent, headersTimeout: 15_000, bodyTimeout: 15_000 });
        const text = await r.body.text();
        if (r.statusCode >= 400) {
          errors++;
          collect(`${mode}: ${c.name} ${method} ${path} → ${r.statusCode}`, text);
        }
        return r.statusCode;
      } catch (err) {
        collect(`${mode}: ${c.name} ${method} ${path} → ${String(err)}`, String(err));
        return 0;
      }
    };
    const sp = `/api/v1/namespaces/${ns}/secrets`;
    const load = async (round: string) => {
      for (const c of clients) {
        const name = `${c.name}-${mode}-${round}`;
        const value = `${MARKER}-${name}-${randomBytes(8).toString('hex')}`;
        secretValue(`Secret ${name}`, value);
        const body = (v: string) => JSON.stringify({ metadata: { name }, data: { value: Buffer.from(v).toString('base64') } });
        await Promise.all([
          send(c, 'GET', `${sp}?resourceVersion=0`),
          send(c, 'GET', sp),
          send(c, 'GET', `${sp}/seed-0?resourceVersion=0`),
          send(c, 'GET', `${sp}/seed-1`),
          send(c, 'GET', `${sp}?watch=1&resourceVersion=0&timeoutSeconds=1`),
          send(c, 'GET', `${sp}/missing-${run}`),
          send(c, 'GET', '/api/v1/namespaces/kube-system/secrets?resourceVersion=0'),
        ]);
        await send(c, 'POST', sp, body(value));
        await send(c, 'POST', sp, body(value)); // 409 (or the same refusal)
        const updated = `${value}-updated`;
        secretValue(`Secret ${name} updated`, updated);
        await send(c, 'PUT', `${sp}/${name}`, body(updated));
        await send(c, 'POST', sp, '{"metadata": not json');
        await send(c, 'GET', `${sp}?watch=1&resourceVersion=not-a-number`);
        await send(c, 'DELETE', `${sp}/${name}`);
        // A client's own TokenReview carries another token in its body (and the answer echoes it).
        await send(c, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: readerToken } }));
      }
    };
    await load('a');

    // kubectl: reads, a watch, a write, errors.
    const kcAdmin = kubeconfigFor(p.url, { token: cluster.info.users.admin.token ?? '' });
    const kcReader = kubeconfigFor(p.url, { token: readerToken });
    const kcCert = kubeconfigFor(p.url, { 'client-certificate': certReader.certFile, 'client-key': certReader.keyFile });
    const kubectlValue = `${MARKER}-kubectl-${mode}-${randomBytes(8).toString('hex')}`;
    secretValue(`kubectl Secret ${mode}`, kubectlValue);
    for (const [kc, args] of [
      [kcAdmin, ['get', 'secrets', '-n', ns, '-o', 'yaml']],
      [kcReader, ['get', 'secret', 'seed-2', '-n', ns, '-o', 'json']],
      [kcCert, ['get', 'secrets', '-n', ns]],
      [kcReader, ['create', 'secret', 'generic', `kubectl-${mode}`, '-n', ns, `--from-literal=value=${kubectlValue}`]],
      [kcCert, ['get', 'secrets', '-n', ns, '--watch', '--request-timeout=2s']],
      [kcAdmin, ['get', 'secret', `missing-${run}`, '-n', ns]],
      [kcAdmin, ['--token', badToken, 'get', 'secrets', '-n', ns]],
      [kcAdmin, ['--token', nobodyToken, 'get', 'secrets', '-n', ns]],
      [kcCert, ['get', 'secrets', '-n', 'kube-system']],
      [kcReader, ['delete', 'secret', `kubectl-${mode}`, '-n', ns]],
    ] as const) {
      const r = await kubectl(kc, args);
      collect(`${mode}: kubectl ${args.join(' ')} (stderr)`, r.stderr);
    }

    // The apiserver goes away: open connections cut, new ones refused; requests and watches meanwhile.
    const watch = send(clients[1] as Client, 'GET', `${sp}?watch=1&timeoutSeconds=30`);
    await sleep(300);
    relay.setMode('refuse');
    relay.dropAll();
    await Promise.all(clients.map((c) => send(c, 'GET', `${sp}/seed-0`)));
    await Promise.all(clients.map((c) => send(c, 'POST', sp, '{}')));
    await sleep(2_000);
    relay.setMode('pass');
    await watch;
    await ready(p.metricsUrl);
    await load('b');

    for (const path of ['/metrics', '/readyz?verbose']) collect(`${mode}: ${path}`, await (await request(`${p.metricsUrl}${path}`)).body.text());
    const out = await p.stop();
    assert.equal(out.code, 0, out.stderr);
    collect(`${mode}: the proxy's stdout`, out.stdout);
    collect(`${mode}: the proxy's stderr`, out.stderr);
    const lines = out.stdout.split('\n').filter((l) => l !== '').length;
    t.diagnostic(`${mode}: ${requests} raw requests (${errors} error answers), ${lines} log lines`);
    assert.ok(errors > 20, 'the load got error answers to look at');
    assert.ok(lines > requests, 'trace-level output to look at');
  }

  const hits: string[] = [];
  for (const o of outputs) {
    for (const n of needles) if (o.text.includes(n.text)) hits.push(`${o.where}: ${n.what}`);
    if (/Bearer [A-Za-z0-9._-]{8,}/.test(o.text)) hits.push(`${o.where}: a bearer credential`);
    if (/-----BEGIN/.test(o.text)) hits.push(`${o.where}: PEM text`);
  }
  t.diagnostic(`${outputs.length} outputs searched for ${needles.length} secrets`);
  assert.deepEqual([...new Set(hits)], []);
});
