// The Helm chart (charts/kube-cache-proxy): helm lint and helm template clean for the default values
// and every example values file; every rendered manifest accepted by the real apiserver with a
// server-side dry-run; and the chart's ServiceAccount, RBAC and ConfigMap installed into the test
// cluster with the proxy run as that ServiceAccount (its token) with that config file, passing a
// smoke test. The RBAC is the least the proxy needs: a permission missing from it fails the smoke test.
// The metrics port is HTTPS with /metrics authorized by the apiserver (config.metricsMode tls-authn):
// the smoke test scrapes it with the token of a ServiceAccount bound to the chart's metrics-reader
// ClusterRole, and checks that no token gets 401 and one without that role 403.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { sharedCluster } from '../helpers/env.js';
import { repoRoot } from '../cluster/paths.js';
import { KUBERNETES_VERSION } from '../cluster/build.js';
import { ensureHelm } from '../tools/helm.js';
import { waitFor } from '../helpers/wait.js';
import { call, closeAgents } from '../helpers/http.js';

const cluster = sharedCluster();
const CHART = join(repoRoot(), 'charts', 'kube-cache-proxy');
const EXAMPLES = readdirSync(join(CHART, 'examples')).filter((f) => f.endsWith('.yaml')).sort();
const CLI = join(repoRoot(), 'dist', 'proxy', 'cli.js');
// A namespace of this run's own. It is emptied, not deleted, afterwards: the test cluster runs no
// namespace controller, so a deleted namespace would stay Terminating for good.
const NAMESPACE = `kcp-helm-${Date.now().toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), 'kcp-helm-'));
const apiserver = cluster.info.apiservers[0];
if (!apiserver) throw new Error('the shared cluster has no apiserver');

let helmBin = '';
const helmEnv = { ...process.env, HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config'), HELM_DATA_HOME: join(dir, 'data'), KUBECONFIG: '' };

interface Run { code: number; stdout: string; stderr: string }

function helm(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(helmBin, args, { env: helmEnv, maxBuffer: 64 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; data?: Record<string, string> } & Record<string, unknown>;

/** `helm template` of the chart with one values file (or the defaults); fails on any error. */
async function render(release: string, valuesFile?: string, extra: readonly string[] = []): Promise<Manifest[]> {
  const args = ['template', release, CHART, '--namespace', NAMESPACE, '--kube-version', KUBERNETES_VERSION, ...(valuesFile ? ['-f', join(CHART, 'examples', valuesFile)] : []), ...extra];
  const r = await helm(args);
  assert.equal(r.code, 0, `helm ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr, '', `helm ${args.join(' ')} wrote to stderr`);
  const docs = yaml.loadAll(r.stdout).filter((d): d is Manifest => typeof d === 'object' && d !== null);
  for (const d of docs) assert.ok(typeof d.kind === 'string' && typeof d.metadata?.name === 'string', `a rendered document without kind or name: ${JSON.stringify(d).slice(0, 200)}`);
  return docs;
}

const toYaml = (docs: readonly Manifest[]): string => docs.map((d) => `---\n${yaml.dump(d)}`).join('');

async function kubectl(args: string[], input?: string): Promise<Run> {
  return cluster.kubectl('admin', args, input === undefined ? {} : { input });
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// The test cluster has no prometheus-operator or cert-manager: minimal CRDs for ServiceMonitor,
// PrometheusRule and Certificate (any content accepted) let the apiserver dry-run those objects.
// They are installed by this test and deleted after it.
const CRDS: Array<{ group: string; kind: string; plural: string }> = [
  { group: 'monitoring.coreos.com', kind: 'ServiceMonitor', plural: 'servicemonitors' },
  { group: 'monitoring.coreos.com', kind: 'PrometheusRule', plural: 'prometheusrules' },
  { group: 'cert-manager.io', kind: 'Certificate', plural: 'certificates' },
];
const crdManifests = CRDS.map((c) => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${c.plural}.${c.group}` },
  spec: {
    group: c.group,
    scope: 'Namespaced',
    names: { kind: c.kind, plural: c.plural, singular: c.kind.toLowerCase(), listKind: `${c.kind}List` },
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
}));

const clusterScoped: string[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  helmBin = await ensureHelm((m) => process.stderr.write(`[helm-chart] ${m}\n`));
  await kubectlOk(['create', 'namespace', NAMESPACE]);
}, { timeout: 15 * 60_000 });

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await kubectl(['delete', 'configmaps,serviceaccounts', '--all', '-n', NAMESPACE, '--ignore-not-found', '--wait=false']);
  for (const c of CRDS) await kubectl(['delete', 'crd', `${c.plural}.${c.group}`, '--ignore-not-found', '--wait=false']);
  for (const o of clusterScoped) await kubectl(['delete', o, '--ignore-not-found', '--wait=false']);
  await kubectl(['delete', 'role,rolebinding', '-n', 'default', '-l', 'app.kubernetes.io/name=kube-cache-proxy', '--ignore-not-found', '--wait=false']);
  rmSync(dir, { recursive: true, force: true });
  await closeAgents();
});

test('helm lint and helm lint --strict: clean for the default values and every example', { timeout: 120_000 }, async () => {
  assert.ok(EXAMPLES.length >= 4, `examples: ${EXAMPLES.join(', ')}`);
  for (const values of [undefined, ...EXAMPLES]) {
    for (const strict of [false, true]) {
      const args = ['lint', CHART, '--kube-version', KUBERNETES_VERSION, ...(strict ? ['--strict'] : []), ...(values ? ['-f', join(CHART, 'examples', values)] : [])];
      const r = await helm(args);
      const out = r.stdout + r.stderr;
      assert.equal(r.code, 0, `helm ${args.join(' ')}:\n${out}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/, out);
      assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/, `helm ${args.join(' ')}:\n${out}`);
    }
  }
});

test('helm template: the expected objects for each values file; values outside the schema are refused', { timeout: 120_000 }, async () => {
  const kinds = async (values?: string) => (await render('kcp', values)).map((d) => d.kind).sort();
  // Two ClusterRoles: the proxy's, and <fullname>-metrics-reader (config.metricsMode tls-authn, the default).
  const base = ['ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'PodDisruptionBudget', 'Service', 'ServiceAccount'];
  assert.deepEqual(await kinds(), [...base, 'Deployment'].sort());
  assert.deepEqual(await kinds('daemonset-control-plane.yaml'), [...base, 'DaemonSet', 'Role', 'RoleBinding'].sort());
  // monitoring.yaml binds the metrics reader to Prometheus' ServiceAccount.
  assert.deepEqual(await kinds('monitoring.yaml'), [...base, 'Certificate', 'ClusterRoleBinding', 'Deployment', 'PrometheusRule', 'ServiceMonitor'].sort());
  for (const f of EXAMPLES) assert.ok((await render('kcp', f)).length > 0);

  // The pod as the image expects it: the Dockerfile's numeric USER, read-only root, probes on the metrics port.
  const deployment = (await render('kcp')).find((d) => d.kind === 'Deployment');
  assert.ok(deployment, 'no Deployment');
  type Pod = { securityContext: { runAsUser: number; runAsGroup: number; runAsNonRoot: boolean }; containers: Array<{ args: string[]; securityContext: { readOnlyRootFilesystem: boolean }; livenessProbe: { httpGet: { path: string; port: string } }; readinessProbe: { httpGet: { path: string; port: string } }; ports: Array<{ name: string; containerPort: number }> }> };
  const pod = (deployment['spec'] as { template: { spec: Pod } }).template.spec;
  const user = /^USER\s+(\d+):(\d+)\s*$/m.exec(readFileSync(join(repoRoot(), 'Dockerfile'), 'utf8'));
  assert.ok(user, 'the Dockerfile has no numeric USER uid:gid');
  assert.deepEqual([pod.securityContext.runAsUser, pod.securityContext.runAsGroup, pod.securityContext.runAsNonRoot], [Number(user[1]), Number(user[2]), true]);
  const container = pod.containers[0];
  assert.ok(container);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual([container.livenessProbe.httpGet, container.readinessProbe.httpGet], [{ path: '/livez', port: 'metrics', scheme: 'HTTPS' }, { path: '/readyz', port: 'metrics', scheme: 'HTTPS' }]);
  assert.deepEqual(container.ports.map((p) => [p.name, p.containerPort]), [['https', 8443], ['metrics', 9443]]);
  assert.deepEqual(container.args.slice(0, 2), ['--config', '/etc/kube-cache-proxy/config.yaml']);

  // The metrics port: HTTPS with /metrics authorized by the apiserver by default, so the proxy's
  // ClusterRole creates TokenReviews and SubjectAccessReviews, and <fullname>-metrics-reader grants
  // get on /metrics (and nothing else); plain HTTP on request, without either.
  type Rule = { apiGroups?: string[]; resources?: string[]; nonResourceURLs?: string[]; verbs: string[] };
  const roles = async (extra: readonly string[] = []) => (await render('kcp', undefined, extra)).filter((d) => d.kind === 'ClusterRole').map((d) => [d.metadata.name, d['rules'] as Rule[]] as const);
  const reviews = (rules: readonly Rule[]) => rules.filter((r) => r.verbs.includes('create') && (r.resources?.includes('tokenreviews') || r.resources?.includes('subjectaccessreviews'))).length;
  const secure = new Map(await roles());
  assert.deepEqual(secure.get('kcp-kube-cache-proxy-metrics-reader'), [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
  assert.equal(reviews(secure.get('kcp-kube-cache-proxy') ?? []), 2, 'no create on tokenreviews and subjectaccessreviews');
  const plain = new Map(await roles(['--set', 'config.metricsMode=plain']));
  assert.deepEqual([...plain.keys()], ['kcp-kube-cache-proxy']);
  assert.equal(reviews(plain.get('kcp-kube-cache-proxy') ?? []), 0);
  const plainPod = ((await render('kcp', undefined, ['--set', 'config.metricsMode=plain'])).find((d) => d.kind === 'Deployment')?.['spec'] as { template: { spec: Pod } }).template.spec;
  assert.deepEqual(plainPod.containers[0]?.livenessProbe.httpGet, { path: '/livez', port: 'metrics' });
  const monitor = (await render('kcp', 'monitoring.yaml')).find((d) => d.kind === 'ServiceMonitor');
  const endpoint = (monitor?.['spec'] as { endpoints: Array<Record<string, unknown>> } | undefined)?.endpoints[0];
  assert.deepEqual([endpoint?.['scheme'], endpoint?.['bearerTokenFile'], endpoint?.['tlsConfig']], ['https', '/var/run/secrets/kubernetes.io/serviceaccount/token', { insecureSkipVerify: true }]);

  // The dashboards ConfigMap holds every dashboards/*.json of the chart, labelled for the sidecar.
  const files = readdirSync(join(CHART, 'dashboards')).filter((f) => f.endsWith('.json')).sort();
  const dash = (await render('kcp')).find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'kcp-kube-cache-proxy-dashboards');
  assert.ok(dash, 'no dashboards ConfigMap');
  assert.equal((dash.metadata as { labels?: Record<string, string> }).labels?.['grafana_dashboard'], '1');
  assert.deepEqual(Object.keys(dash.data ?? {}).sort(), files);
  for (const f of files) assert.doesNotThrow(() => JSON.parse(dash.data?.[f] ?? ''), f);

  // The alerts parse and name the proxy's metrics (promtool from Debian's prometheus package, which .ci/run installs).
  const rule = (await render('kcp', 'monitoring.yaml')).find((d) => d.kind === 'PrometheusRule');
  assert.ok(rule, 'no PrometheusRule');
  const groups = (rule['spec'] as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }).groups;
  const rulesFile = join(dir, 'rules.yaml');
  writeFileSync(rulesFile, yaml.dump({ groups }));
  const check = await new Promise<Run>((resolve) => execFile('promtool', ['check', 'rules', rulesFile], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })));
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const alerts = groups.flatMap((g) => g.rules);
  for (const metric of ['kube_cache_proxy_cache_synced', 'kube_cache_proxy_freshness_wait_seconds_bucket', 'kube_cache_proxy_cache_fallbacks_total', 'kube_cache_proxy_flowcontrol_rejected_total', 'kube_cache_proxy_backend_healthy']) {
    assert.ok(alerts.some((a) => a.expr.includes(metric)), `no alert on ${metric}`);
  }

  // NOTES.txt tells how to point a kubeconfig at the proxy: the Service's address, the serving CA, the user's own credentials.
  const install = await helm(['install', 'kcp', CHART, '--namespace', NAMESPACE, '--dry-run=client']);
  assert.equal(install.code, 0, install.stderr);
  const notes = install.stdout.slice(install.stdout.indexOf('NOTES:'));
  assert.ok(notes.includes(`--server=https://kcp-kube-cache-proxy.${NAMESPACE}.svc:443`), notes);
  assert.match(notes, /--certificate-authority=kube-cache-proxy-ca\.crt/);
  assert.match(notes, /create secret tls kcp-kube-cache-proxy-tls/);
  assert.match(notes, /--user="\$\(kubectl config view --minify/);
  assert.ok(notes.includes(`Metrics: https://kcp-kube-cache-proxy.${NAMESPACE}.svc:9443/metrics`), notes);
  assert.match(notes, /bind Prometheus to ClusterRole kcp-kube-cache-proxy-metrics-reader/);

  for (const bad of [['--set', 'kind=Pod'], ['--set', 'config.kubeconfig=/x'], ['--set', 'config.authorizationMode=webhook'], ['--set', 'config.bogus=1'], ['--set', 'config.metricsMode=https']]) {
    const r = await helm(['template', 'kcp', CHART, ...bad]);
    assert.notEqual(r.code, 0, `helm template ${bad.join(' ')} was accepted`);
    assert.match(r.stderr, /values don't meet the specifications of the schema|schema/i, r.stderr);
  }
});

test('every rendered manifest is accepted by the apiserver (server-side dry-run), for the defaults and every example', { timeout: 300_000 }, async () => {
  await kubectlOk(['apply', '-f', '-'], toYaml(crdManifests as unknown as Manifest[]));
  await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', ...CRDS.map((c) => `crd/${c.plural}.${c.group}`)]);
  for (const values of [undefined, ...EXAMPLES]) {
    const docs = await render('kcp-dry', values);
    const r = await kubectl(['apply', '--dry-run=server', '-f', '-'], toYaml(docs));
    assert.equal(r.code, 0, `${values ?? 'default values'}: ${r.stderr}`);
    const applied = r.stdout.split('\n').filter((l) => /\(server dry run\)$/.test(l));
    assert.equal(applied.length, docs.length, `${values ?? 'default values'}: ${r.stdout}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The proxy as the chart's ServiceAccount

/** GET /metrics with the scraper's token (the chart's metrics port wants one): the text of a 200. */
async function metricsText(p: Proxy): Promise<string> {
  const r = await call(cluster, p.metricsUrl, '/metrics', { user: 'anonymous', headers: p.scrapeToken ? { authorization: `Bearer ${p.scrapeToken}` } : {} });
  assert.equal(r.status, 200, `/metrics: ${r.text()}`);
  return r.text();
}
const readyz = async (p: Proxy, query = '') => call(cluster, p.metricsUrl, `/readyz${query}`, { user: 'anonymous' });

/** The sum of a metric's samples whose labels contain every `labels` pair. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

interface Proxy { child: ChildProcess; url: string; metricsUrl: string; scrapeToken?: string; output(): string }

function startProxy(args: readonly string[]): Promise<Proxy> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { out += d; });
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      for (const l of out.split('\n')) {
        if (!l.includes('kube-cache-proxy serving')) continue;
        const line = JSON.parse(l) as Record<string, unknown>;
        clearInterval(timer);
        resolve({ child, url: String(line['url']), metricsUrl: `${String(line['metricsScheme'] ?? 'http')}://127.0.0.1:${String(line['metricsPort'])}`, output: () => out });
        return;
      }
      if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`the proxy exited (${child.exitCode}): ${out}`));
      }
    }, 50);
  });
}

async function stopProxy(p: Proxy): Promise<void> {
  if (p.child.exitCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await exited;
}

// The defaults (probe mode), local authorization, and the control-plane DaemonSet's (upstream
// discovery: a Role in `default`; client certificates: impersonation).
// The last one without endpointslices cached, so that the Role in `default` alone lets upstream
// discovery list and watch them (the ClusterRole would cover them otherwise).
const SMOKE: Array<{ values: string | undefined; release: string; extra?: string[] }> = [
  { values: undefined, release: 'kcp-default' },
  { values: 'local-authorization.yaml', release: 'kcp-local' },
  { values: 'daemonset-control-plane.yaml', release: 'kcp-cp', extra: ['--set-json', 'config.cacheResources=["pods","nodes","namespaces","configmaps"]'] },
];
for (const { values, release, extra } of SMOKE) {
  test(`the proxy as the chart's ServiceAccount, with its RBAC and config (${values ?? 'default values'}): kubectl, a cache-served LIST, a watch`, { timeout: 240_000 }, async () => {
    // Prometheus' stand-in: a ServiceAccount bound to the chart's metrics-reader ClusterRole.
    const scraper = `${release}-prometheus`;
    const docs = await render(release, values, [...(extra ?? []), '--set-json', `rbac.metricsReaderSubjects=[{"kind":"ServiceAccount","name":"${scraper}","namespace":"${NAMESPACE}"}]`]);
    const fullname = `${release}-kube-cache-proxy`;
    const wanted = docs.filter((d) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(d.kind) || (d.kind === 'ConfigMap' && d.metadata.name === fullname));
    const workload = docs.find((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet');
    const args = (workload?.['spec'] as { template: { spec: { containers: Array<{ args: string[] }> } } } | undefined)?.template.spec.containers[0]?.args ?? [];
    const clientCa = args.includes('--client-ca-file');
    const discovery = docs.some((d) => d.kind === 'Role');
    assert.deepEqual(wanted.map((d) => d.kind).sort(), ['ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'ConfigMap', ...(discovery ? ['Role', 'RoleBinding'] : []), 'ServiceAccount']);
    for (const d of wanted) if (d.kind.startsWith('Cluster')) clusterScoped.push(`${d.kind.toLowerCase()}/${d.metadata.name}`);
    await kubectlOk(['apply', '-f', '-'], toYaml(wanted));
    await kubectlOk(['create', 'serviceaccount', scraper, '-n', NAMESPACE]);
    const scrapeToken = (await kubectlOk(['create', 'token', scraper, '-n', NAMESPACE, '--duration', '1h'])).trim();

    // The config file exactly as the cluster holds it.
    const cm = JSON.parse(await kubectlOk(['get', 'configmap', fullname, '-n', NAMESPACE, '-o', 'json'])) as { data: Record<string, string> };
    const configText = cm.data['config.yaml'];
    assert.ok(configText, 'no config.yaml in the ConfigMap');
    const configFile = join(dir, `${release}.config.yaml`);
    writeFileSync(configFile, configText);
    const config = yaml.load(configText) as Record<string, unknown>;
    const mode = values === 'local-authorization.yaml' ? 'local' : 'probe';
    assert.equal(config['authorizationMode'], mode);
    assert.equal(config['upstreamDiscovery'] === true, discovery);

    // The ServiceAccount's token from the TokenRequest API, in a kubeconfig of its own.
    const token = (await kubectlOk(['create', 'token', fullname, '-n', NAMESPACE, '--duration', '1h'])).trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const kubeconfig = join(dir, `${release}.kubeconfig`);
    writeFileSync(kubeconfig, JSON.stringify({
      apiVersion: 'v1', kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: apiserver.url, 'certificate-authority': cluster.info.caFile } }],
      users: [{ name: 'sa', user: { token } }],
      contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa' } }],
      'current-context': 'sa',
    }));

    // The chart's arguments (--config, the serving certificate), on loopback ports of our choosing.
    const p = await startProxy(['--kubeconfig', kubeconfig, '--config', configFile, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0',
      '--tls-cert-file', cluster.info.servingCertFile, '--tls-private-key-file', cluster.info.servingKeyFile,
      // The chart's client CA is the cluster's (ConfigMap kube-root-ca.crt): here, the test cluster's CA.
      ...(clientCa ? ['--client-ca-file', cluster.info.caFile] : [])]);
    try {
      // Ready means every cached resource was listed and is watched: with the ServiceAccount's RBAC.
      await waitFor('/readyz 200', async () => ((await readyz(p)).status === 200 ? true : undefined), 60_000).catch(async (err: unknown) => {
        throw new Error(`${String(err)}: ${(await readyz(p, '?verbose')).text()}\n${p.output()}`);
      });
      // The metrics port: HTTPS, /metrics refused without a token (401) and to a token without the
      // metrics-reader role (the proxy's own ServiceAccount's: 403), served to one bound to it.
      assert.match(p.metricsUrl, /^https:\/\//);
      const none = await call(cluster, p.metricsUrl, '/metrics', { user: 'anonymous' });
      assert.equal(none.status, 401, none.text());
      const unbound = await call(cluster, p.metricsUrl, '/metrics', { user: 'anonymous', headers: { authorization: `Bearer ${token}` } });
      assert.equal(unbound.status, 403, unbound.text());
      assert.ok(unbound.text().includes(`User \\"system:serviceaccount:${NAMESPACE}:${fullname}\\" cannot get path \\"/metrics\\"`), unbound.text());
      p.scrapeToken = scrapeToken;
      const m0 = await metricsText(p);
      for (const r of (config['cacheResources'] as string[] | undefined) ?? []) {
        const name = r.split('/')[0] ?? r;
        assert.equal(metricSum(m0, 'kube_cache_proxy_cache_synced', { resource: name }), 1, `${name} not synced`);
        assert.equal(metricSum(m0, 'kube_cache_proxy_cache_not_cached', { resource: name }), 0, `${name} not cached`);
      }

      // kubectl through the proxy, with the admin's own credentials.
      const ns = await cluster.kubectl('admin', ['get', 'namespaces', '-o', 'name'], { server: p.url });
      assert.equal(ns.code, 0, ns.stderr);
      assert.match(ns.stdout, new RegExp(`namespace/${NAMESPACE}`));

      // A LIST served from the cache.
      const served0 = metricSum(await metricsText(p), 'kube_cache_proxy_cache_served_total', { resource: 'configmaps', verb: 'list' });
      const list = await cluster.kubectl('admin', ['get', '--raw', `/api/v1/namespaces/${NAMESPACE}/configmaps?resourceVersion=0`], { server: p.url });
      assert.equal(list.code, 0, list.stderr);
      assert.ok(((JSON.parse(list.stdout) as { items: Array<{ metadata: { name: string } }> }).items).some((i) => i.metadata.name === fullname));
      const m1 = await metricsText(p);
      assert.ok(metricSum(m1, 'kube_cache_proxy_cache_served_total', { resource: 'configmaps', verb: 'list' }) > served0, 'the LIST was not served from the cache');
      if (mode === 'local') {
        // Judged by the proxy's own TokenReview and SubjectAccessReview, not by the probe fallback.
        assert.ok(metricSum(m1, 'kube_cache_proxy_authorization_reviews_total', { kind: 'token', result: 'authenticated' }) >= 1, 'no TokenReview succeeded');
        assert.ok(metricSum(m1, 'kube_cache_proxy_authorization_reviews_total', { kind: 'subjectaccess', result: 'allowed' }) >= 1, 'no SubjectAccessReview succeeded');
        assert.equal(metricSum(m1, 'kube_cache_proxy_authorization_reviews_total', { result: 'error' }), 0, 'a review failed');
        assert.equal(metricSum(m1, 'kube_cache_proxy_authorization_decisions_total', { decision: 'fallback' }), 0, 'a read fell back to the probe');
      }

      if (clientCa) {
        // A client certificate (node-1's): its reads go upstream under the proxy's identity with
        // Impersonate-User/-Group, which the ClusterRole must allow.
        const before = metricSum(await metricsText(p), 'kube_cache_proxy_cache_served_total', { resource: 'pods' });
        const pods = await cluster.kubectl('node1', ['get', '--raw', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&resourceVersion=0'], { server: p.url });
        assert.equal(pods.code, 0, pods.stderr);
        assert.ok(metricSum(await metricsText(p), 'kube_cache_proxy_cache_served_total', { resource: 'pods' }) > before, 'the node\'s LIST was not served from the cache');
        const forwarded = await cluster.kubectl('node1', ['get', 'node', 'node-1', '--ignore-not-found', '-o', 'name'], { server: p.url });
        assert.equal(forwarded.code, 0, forwarded.stderr);
      }

      // A watch through the proxy, from the cache, sees a change made at the apiserver.
      const watch = spawn(cluster.info.kubectl, ['--kubeconfig', cluster.info.users.admin.kubeconfig, '--server', p.url, 'get', 'configmaps', '-n', NAMESPACE, '--watch-only', '-o', 'name'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(watch);
      let seen = '';
      watch.stdout.setEncoding('utf8').on('data', (d: string) => { seen += d; });
      try {
        await waitFor('a cache-served watcher', async () => (metricSum(await metricsText(p), 'kube_cache_proxy_cache_watchers', { resource: 'configmaps' }) >= 1 ? true : undefined), 30_000);
        const name = `${release}-watched`;
        await kubectlOk(['create', 'configmap', name, '-n', NAMESPACE, '--from-literal=a=1']);
        await waitFor('the change on the watch', async () => (seen.includes(`configmap/${name}`) ? true : undefined), 30_000);
      } finally {
        watch.kill('SIGTERM');
        children.delete(watch);
      }

      // The proxy's own requests were all allowed: no watch of the cache's refused, nothing logged at
      // warn or above.
      const m2 = await metricsText(p);
      for (const code of ['401', '403']) assert.equal(metricSum(m2, 'kube_cache_proxy_cache_watch_restarts_total', { reason: `status_${code}` }), 0, `the cache's watches got ${code}`);
      // (The test cluster has no endpoint reconciler: upstream discovery finds no ready apiserver and
      // says so once, keeping the kubeconfig's.)
      const problems = p.output().split('\n').filter((l) => /forbidden|\b403\b|"level":(4|5|6)0/.test(l) && !l.includes('list no ready apiserver; keeping the last set'));
      assert.deepEqual(problems, [], 'the proxy logged problems under the chart\'s RBAC');
    } finally {
      await stopProxy(p);
    }
  });
}
