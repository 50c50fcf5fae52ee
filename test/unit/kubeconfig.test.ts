// The proxy's own kubeconfig loader (proxy/kubeconfig.ts) and credentials (proxy/kube-credentials.ts),
// with kubectl's rules: merging, context selection, relative paths, exec plugins, token files.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { loadKubeConfig, type LoadEnvironment } from '../../proxy/kubeconfig.js';
import { KubeCredentialSource } from '../../proxy/kube-credentials.js';
import { proxyKubeconfig } from '../../proxy/write-kubeconfig.js';
import { ConfigError } from '../../proxy/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'kcp-kubeconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | object): string {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

/** An environment with nothing in it: no KUBECONFIG, an empty home, no service account. */
function env(vars: Record<string, string> = {}): LoadEnvironment {
  return { env: vars, home: join(dir, 'no-home'), inClusterDir: join(dir, 'no-sa') };
}

function config(o: { clusters?: object[]; users?: object[]; contexts?: object[]; current?: string }): object {
  return { apiVersion: 'v1', kind: 'Config', clusters: o.clusters ?? [], users: o.users ?? [], contexts: o.contexts ?? [], 'current-context': o.current };
}

const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('inline data and files give the same CA, certificate and key', async () => {
  file('pki/ca.crt', CA);
  file('pki/client.crt', CERT);
  file('pki/client.key', KEY);
  const inline = file('inline.yaml', config({
    clusters: [{ name: 'c', cluster: { server: 'https://a:6443/', 'certificate-authority-data': b64(CA) } }],
    users: [{ name: 'u', user: { 'client-certificate-data': b64(CERT), 'client-key-data': b64(KEY) } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', namespace: 'team-a' } }],
    current: 'x',
  }));
  const files = file('files.yaml', config({
    clusters: [{ name: 'c', cluster: { server: 'https://a:6443', 'certificate-authority': join(dir, 'pki/ca.crt') } }],
    users: [{ name: 'u', user: { 'client-certificate': join(dir, 'pki/client.crt'), 'client-key': join(dir, 'pki/client.key') } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    current: 'x',
  }));
  const a = loadKubeConfig({ kubeconfig: inline }, env());
  const b = loadKubeConfig({ kubeconfig: files }, env());
  assert.equal(a.cluster.server, 'https://a:6443', 'a trailing slash is dropped');
  assert.equal(a.namespace, 'team-a');
  assert.equal(a.cluster.caData?.toString(), CA);
  assert.equal(readFileSync(b.cluster.caFile ?? '', 'utf8'), CA);
  const ca = await new KubeCredentialSource(a.user, a.cluster).refresh();
  const cb = await new KubeCredentialSource(b.user, b.cluster).refresh();
  for (const c of [ca, cb]) {
    assert.equal(c.cert?.toString(), CERT);
    assert.equal(c.key?.toString(), KEY);
    assert.equal(c.authorization, undefined);
  }
});

test('relative paths resolve against the directory of the kubeconfig that holds them, as kubectl does', async () => {
  file('rel/pki/node.crt', CERT);
  file('rel/pki/node.key', KEY);
  file('rel/token', '  tok-rel\n');
  const kc = file('rel/node.kubeconfig', config({
    clusters: [{ name: 'c', cluster: { server: 'https://a', 'certificate-authority': 'pki/node.crt' } }],
    users: [{ name: 'u', user: { 'client-certificate': 'pki/node.crt', 'client-key': './pki/node.key', 'token-file': 'token' } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    current: 'x',
  }));
  const l = loadKubeConfig({ kubeconfig: kc }, env());
  assert.equal(l.cluster.caFile, join(dir, 'rel/pki/node.crt'));
  assert.equal(l.user.clientKey, join(dir, 'rel/pki/node.key'));
  const c = await new KubeCredentialSource(l.user, l.cluster).refresh();
  assert.equal(c.authorization, 'Bearer tok-rel', 'the token file is read, whitespace trimmed');
  assert.equal(c.cert?.toString(), CERT);
  // --write-kubeconfig carries the user's references, absolute now.
  const written = JSON.parse(proxyKubeconfig(l, 'https://127.0.0.1:1', CA)) as { users: Array<{ user: Record<string, unknown> }>; 'current-context': string };
  assert.deepEqual(written.users[0]?.user, {
    'client-certificate': join(dir, 'rel/pki/node.crt'), 'client-key': join(dir, 'rel/pki/node.key'), 'token-file': join(dir, 'rel/token'),
  });
  assert.equal(written['current-context'], 'kube-cache-proxy-x');
});

test('KUBECONFIG: files merged, the first to name an entry or set current-context wins, missing files skipped', () => {
  const one = file('merge/one.yaml', config({
    clusters: [{ name: 'shared', cluster: { server: 'https://first' } }],
    contexts: [{ name: 'a', context: { cluster: 'shared', user: 'ua' } }],
  }));
  const two = file('merge/two.yaml', config({
    clusters: [{ name: 'shared', cluster: { server: 'https://second' } }, { name: 'only2', cluster: { server: 'https://only2' } }],
    users: [{ name: 'ua', user: { token: 'from-two' } }],
    contexts: [{ name: 'b', context: { cluster: 'only2', user: 'ua' } }],
    current: 'a',
  }));
  const three = file('merge/three.yaml', config({ current: 'b' }));
  const KUBECONFIG = [one, join(dir, 'merge/missing.yaml'), two, three].join(delimiter);
  const l = loadKubeConfig({}, env({ KUBECONFIG }));
  assert.equal(l.contextName, 'a', 'current-context from the first file that sets it');
  assert.equal(l.cluster.server, 'https://first', 'the first file naming a cluster wins');
  assert.equal(l.user.token, 'from-two', 'entries from later files are available');
  assert.equal(loadKubeConfig({ context: 'b' }, env({ KUBECONFIG })).cluster.server, 'https://only2');
  // --kubeconfig replaces KUBECONFIG entirely.
  assert.throws(() => loadKubeConfig({ kubeconfig: three }, env({ KUBECONFIG })), /current-context "b" not found/);
});

test('context selection and the missing pieces named in the error', () => {
  const users = [{ name: 'u', user: { token: 't' } }];
  const clusters = [{ name: 'c', cluster: { server: 'https://c' } }, { name: 'noserver', cluster: {} }];
  const kc = file('ctx.yaml', config({
    clusters, users,
    contexts: [
      { name: 'good', context: { cluster: 'c', user: 'u' } },
      { name: 'nocluster', context: { cluster: 'gone', user: 'u' } },
      { name: 'nouser', context: { cluster: 'c', user: 'gone' } },
      { name: 'noserver', context: { cluster: 'noserver', user: 'u' } },
      { name: 'anonymous', context: { cluster: 'c' } },
    ],
  }));
  const load = (context?: string) => loadKubeConfig({ kubeconfig: kc, context }, env());
  assert.equal(load('good').user.token, 't');
  assert.equal(load('anonymous').user.token, undefined, 'a context without a user is anonymous');
  const cases: Array<[string | undefined, RegExp]> = [
    [undefined, /^--kubeconfig: no current-context in .*ctx\.yaml \(pass --context\)$/],
    ['nope', /^--context: context "nope" not found in the kubeconfig$/],
    ['nocluster', /^--kubeconfig: context "nocluster" refers to cluster "gone", which is not in the kubeconfig$/],
    ['nouser', /^--kubeconfig: context "nouser" refers to user "gone", which is not in the kubeconfig$/],
    ['noserver', /^--kubeconfig: cluster "noserver" has no server$/],
  ];
  for (const [context, msg] of cases) {
    assert.throws(() => load(context), (e: unknown) => e instanceof ConfigError && msg.test(e.message), String(context));
  }
  const refused: Array<[object, object, RegExp]> = [
    [{ server: 'https://c', 'proxy-url': 'http://p:3128' }, { token: 't' }, /cluster "c": proxy-url is not supported/],
    [{ server: 'https://c' }, { 'auth-provider': { name: 'oidc' } }, /user "u": auth-provider is not supported/],
    [{ server: 'https://c' }, { exec: { apiVersion: 'client.authentication.k8s.io/v1alpha1', command: 'x' } }, /exec: apiVersion must be/],
    [{ server: 'https://c' }, { exec: { apiVersion: 'client.authentication.k8s.io/v1' } }, /exec: command is missing/],
  ];
  for (const [cluster, user, msg] of refused) {
    const f = file('refused.yaml', config({ clusters: [{ name: 'c', cluster }], users: [{ name: 'u', user }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x' }));
    assert.throws(() => loadKubeConfig({ kubeconfig: f }, env()), (e: unknown) => e instanceof ConfigError && msg.test(e.message), msg.source);
  }
  assert.throws(() => loadKubeConfig({ kubeconfig: join(dir, 'absent') }, env()), /^ConfigError: --kubeconfig: ENOENT/);
  assert.throws(() => loadKubeConfig({ kubeconfig: file('garbage', 'not a kubeconfig\n') }, env()), /not a kubeconfig/);
  assert.throws(() => loadKubeConfig({}, env()), /no kubeconfig: pass --kubeconfig, set KUBECONFIG, create .*\.kube\/config/);
  const home = join(dir, 'home');
  file('home/.kube/config', config({ clusters, users, contexts: [{ name: 'good', context: { cluster: 'c', user: 'u' } }], current: 'good' }));
  assert.equal(loadKubeConfig({}, { ...env(), home }).cluster.server, 'https://c', '~/.kube/config by default');
});

test('a client key without its certificate is refused when credentials are resolved', async () => {
  const f = file('halfcert.yaml', config({
    clusters: [{ name: 'c', cluster: { server: 'https://c' } }],
    users: [{ name: 'u', user: { 'client-key-data': b64(KEY) } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x',
  }));
  const l = loadKubeConfig({ kubeconfig: f }, env());
  await assert.rejects(new KubeCredentialSource(l.user, l.cluster).refresh(), /a client key without a client certificate/);
});

/** A credential plugin: counts its runs in a file, prints a token numbered by the run. */
const PLUGIN = `
const fs = require('node:fs');
const counter = process.env.COUNTER;
const n = (fs.existsSync(counter) ? Number(fs.readFileSync(counter, 'utf8')) : 0) + 1;
fs.writeFileSync(counter, String(n));
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
if (process.argv[2] === 'fail') { process.stderr.write('no credentials for you\\n'); process.exit(3); }
const status = process.argv[2] === 'cert'
  ? { clientCertificateData: ${JSON.stringify(CERT)}, clientKeyData: ${JSON.stringify(KEY)} }
  : { token: 'tok-' + n + '-' + (info.spec.cluster ? info.spec.cluster.server : 'none') };
if (process.env.EXPIRES) status.expirationTimestamp = process.env.EXPIRES;
process.stdout.write(JSON.stringify({ apiVersion: info.apiVersion, kind: 'ExecCredential', status }));
`;

test('an exec credential plugin: run with its args and env, its token used, re-run only near its expiry', async () => {
  const script = file('plugin/plugin.cjs', PLUGIN);
  const counter = join(dir, 'plugin/count');
  const expires = '2030-01-01T00:00:00Z';
  for (const apiVersion of ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1']) {
    rmSync(counter, { force: true });
    const f = file('exec.yaml', config({
      clusters: [{ name: 'c', cluster: { server: 'https://c:6443' } }],
      users: [{ name: 'u', user: { exec: { apiVersion, command: process.execPath, args: [script], env: [{ name: 'COUNTER', value: counter }, { name: 'EXPIRES', value: expires }], provideClusterInfo: true, interactiveMode: 'IfAvailable' } } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x',
    }));
    const l = loadKubeConfig({ kubeconfig: f }, env());
    let now = Date.parse('2029-12-31T23:00:00Z');
    const src = new KubeCredentialSource(l.user, l.cluster, () => now);
    const first = await src.refresh();
    assert.equal(first.authorization, 'Bearer tok-1-https://c:6443', `${apiVersion}: token, with the cluster info the plugin asked for`);
    assert.equal(first.expiresAt, Date.parse(expires));
    assert.equal((await src.refresh()).authorization, 'Bearer tok-1-https://c:6443', 'an unexpired credential is kept');
    now = Date.parse('2029-12-31T23:59:00Z');
    assert.equal((await src.refresh()).authorization, 'Bearer tok-2-https://c:6443', 'near its expiry the plugin runs again');
    assert.equal(readFileSync(counter, 'utf8'), '2');
  }
  const withCert = file('exec-cert.yaml', config({
    clusters: [{ name: 'c', cluster: { server: 'https://c' } }],
    users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [script, 'cert'], env: [{ name: 'COUNTER', value: counter }] } } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x',
  }));
  const lc = loadKubeConfig({ kubeconfig: withCert }, env());
  const c = await new KubeCredentialSource(lc.user, lc.cluster).refresh();
  assert.equal(c.cert?.toString(), CERT);
  assert.equal(c.key?.toString(), KEY);
  assert.equal(c.authorization, undefined);
  assert.equal(c.expiresAt, undefined);
  const failing = file('exec-fail.yaml', config({
    clusters: [{ name: 'c', cluster: { server: 'https://c' } }],
    users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [script, 'fail'], env: [{ name: 'COUNTER', value: counter }] } } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x',
  }));
  const lf = loadKubeConfig({ kubeconfig: failing }, env());
  await assert.rejects(new KubeCredentialSource(lf.user, lf.cluster).refresh(), /exec plugin .*: .*no credentials for you/);
});

test('a token file is re-read on every refresh (rotation); the in-cluster service account likewise', async () => {
  const tokenFile = file('rotate/token', 'first\n');
  const f = file('rotate/kubeconfig', config({
    clusters: [{ name: 'c', cluster: { server: 'https://c' } }],
    users: [{ name: 'u', user: { 'token-file': 'token' } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x',
  }));
  const l = loadKubeConfig({ kubeconfig: f }, env());
  const src = new KubeCredentialSource(l.user, l.cluster);
  assert.equal((await src.refresh()).authorization, 'Bearer first');
  writeFileSync(tokenFile, 'second');
  assert.equal((await src.refresh()).authorization, 'Bearer second');

  const sa = join(dir, 'sa');
  file('sa/token', 'sa-1');
  file('sa/ca.crt', CA);
  const e: LoadEnvironment = { env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, home: join(dir, 'no-home'), inClusterDir: sa };
  const ic = loadKubeConfig({}, e);
  assert.equal(ic.cluster.server, 'https://[fd00::1]:6443');
  assert.equal(ic.cluster.caFile, join(sa, 'ca.crt'));
  const s2 = new KubeCredentialSource(ic.user, ic.cluster);
  assert.equal((await s2.refresh()).authorization, 'Bearer sa-1');
  writeFileSync(join(sa, 'token'), 'sa-2');
  assert.equal((await s2.refresh()).authorization, 'Bearer sa-2');
  // KUBECONFIG, when set, is preferred to the service account, as kubectl does.
  const kubeconfigFirst = loadKubeConfig({}, { ...e, env: { ...e.env, KUBECONFIG: f } });
  assert.equal(kubeconfigFirst.cluster.server, 'https://c');
});
