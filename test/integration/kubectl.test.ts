// kubectl through the proxy versus straight to the apiserver: the same commands, the same output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { sharedCluster, startTestProxy, type TestProxy } from '../helpers/env.js';
import { call } from '../helpers/http.js';

const cluster = sharedCluster();
let proxy: TestProxy;
before(async () => { proxy = await startTestProxy(cluster); });
after(async () => { await proxy.stop(); });

const direct = () => cluster.info.apiservers[0]?.url ?? '';

const cm = (name: string, data: Record<string, string>, labels: Record<string, string> = {}) =>
  JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data });
const pod = (name: string, nodeName?: string) => JSON.stringify({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'demo' } },
  spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'registry.example/demo:1' }] },
});

/** [args, stdin] with NS standing for the namespace of the run. */
const script: Array<[string[], string?]> = [
  [['create', 'namespace', 'NS']],
  [['create', 'configmap', 'cm1', '-n', 'NS', '--from-literal=a=1']],
  [['apply', '-n', 'NS', '-f', '-'], cm('cm2', { x: '1' })],
  [['apply', '-n', 'NS', '-f', '-'], cm('cm2', { x: '2' }, { tier: 'web' })],
  [['apply', '--server-side', '-n', 'NS', '-f', '-'], cm('cm3', { y: '1' })],
  [['apply', '--server-side', '--field-manager', 'other', '-n', 'NS', '-f', '-'], cm('cm3', { y: '2' })],
  [['get', 'configmaps', '-n', 'NS', '-o', 'name']],
  [['get', 'configmap', 'cm2', '-n', 'NS', '-o', 'jsonpath={.data} {.metadata.labels}']],
  [['patch', 'configmap', 'cm1', '-n', 'NS', '--type', 'merge', '-p', '{"data":{"b":"2"}}']],
  [['patch', 'configmap', 'cm1', '-n', 'NS', '--type', 'json', '-p', '[{"op":"replace","path":"/data/a","value":"3"}]']],
  [['patch', 'configmap', 'cm1', '-n', 'NS', '--type', 'strategic', '-p', '{"metadata":{"annotations":{"k":"v"}}}']],
  [['label', 'configmap', 'cm1', '-n', 'NS', 'env=test']],
  [['label', 'configmap', 'cm1', '-n', 'NS', 'env=prod']],
  [['get', 'configmaps', '-n', 'NS', '-l', 'env=test', '-o', 'name']],
  [['get', 'configmap', 'cm1', '-n', 'NS', '-o', 'jsonpath={.data.a}{.data.b} {.metadata.labels.env} {.metadata.annotations.k}']],
  [['apply', '-n', 'NS', '-f', '-'], pod('p1', 'node-1')],
  [['create', '-n', 'NS', '-f', '-'], pod('p2')],
  [['get', 'pods', '-n', 'NS', '-o', 'name']],
  [['get', 'pod', 'p1', '-n', 'NS', '-o', 'jsonpath={.spec.nodeName} {.status.phase}']],
  [['label', 'pod', 'p1', '-n', 'NS', 'extra=yes']],
  [['get', 'pods', '-n', 'NS', '-l', 'app=demo,extra', '-o', 'name']],
  [['get', 'configmap', 'missing', '-n', 'NS']],
  [['delete', 'configmap', 'cm1', '-n', 'NS']],
  [['delete', 'pod', 'p1', '-n', 'NS', '--grace-period=0', '--force']],
  [['delete', 'pod', 'p2', '-n', 'NS']],
  [['get', 'configmaps,pods', '-n', 'NS', '-o', 'name']],
  [['label', 'namespace', 'NS', 'purpose=test']],
  [['get', 'namespace', 'NS', '-o', 'jsonpath={.metadata.labels.purpose}']],
  [['delete', 'namespace', 'NS', '--wait=false']],
];

async function runScript(server: string, ns: string): Promise<string[]> {
  const out: string[] = [];
  for (const [args, input] of script) {
    const r = await cluster.kubectl('admin', args.map((a) => a.replaceAll('NS', ns)), { server, ...(input === undefined ? {} : { input }) });
    out.push(`${args.join(' ')} => ${r.code}\n${r.stdout}${r.stderr}`.replaceAll(ns, 'NS'));
  }
  return out;
}

test('kubectl create/apply/get/patch/label/delete: same output through the proxy', async () => {
  const suffix = Date.now().toString(36);
  const viaProxy = await runScript(proxy.url, `kp-${suffix}`);
  const straight = await runScript(direct(), `kd-${suffix}`);
  assert.equal(viaProxy.length, script.length);
  for (let i = 0; i < script.length; i++) assert.equal(viaProxy[i], straight[i]);
  // The script really did something: the server-side apply conflict and NotFound are in there.
  assert.match(viaProxy.join('\n'), /conflict/i);
  assert.match(viaProxy.join('\n'), /NotFound|not found/);
});

test('kubectl get --raw: /version, discovery and /openapi/v3 are byte-identical', async () => {
  for (const path of ['/version', '/api', '/apis', '/api/v1', '/apis/apps/v1', '/openapi/v3', '/openapi/v3/api/v1']) {
    const [p, d] = await Promise.all([
      cluster.kubectl('admin', ['get', '--raw', path], { server: proxy.url }),
      cluster.kubectl('admin', ['get', '--raw', path], { server: direct() }),
    ]);
    assert.equal(p.code, 0, `${path}: ${p.stderr}`);
    assert.equal(p.stdout, d.stdout, path);
  }
});

test('kubectl get --watch through the proxy sees another client\'s update', async () => {
  const ns = 'team-a';
  const name = `watched-${Date.now().toString(36)}`;
  const create = await cluster.kubectl('admin', ['create', 'configmap', name, '-n', ns, '--from-literal=v=0'], { server: direct() });
  assert.equal(create.code, 0, create.stderr);
  const watcher = spawn(cluster.info.kubectl, [
    '--kubeconfig', cluster.info.users.admin.kubeconfig, '--server', proxy.url,
    'get', 'configmap', name, '-n', ns, '--watch', '-o', 'jsonpath={.data.v}{"\\n"}',
  ]);
  let seen = '';
  const waiting = new Set<() => void>();
  watcher.stdout.on('data', (d: Buffer) => {
    seen += d.toString();
    for (const check of waiting) check();
  });
  const saw = (v: string) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(check);
      reject(new Error(`watch did not show ${v}; saw ${JSON.stringify(seen)}`));
    }, 20_000);
    const check = () => {
      if (!seen.split('\n').includes(v)) return;
      waiting.delete(check);
      clearTimeout(timer);
      resolve();
    };
    waiting.add(check);
    check();
  });
  try {
    await saw('0');
    const patch = await call(cluster, direct(), `/api/v1/namespaces/${ns}/configmaps/${name}`, {
      method: 'PATCH', body: '{"data":{"v":"1"}}', headers: { 'content-type': 'application/merge-patch+json' },
    });
    assert.equal(patch.status, 200);
    await saw('1');
  } finally {
    watcher.kill();
  }
});
