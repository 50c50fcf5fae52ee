// The npm package as a user gets it: `npm pack` of this checkout, `npm install <tarball>` into an
// empty directory, then the installed `kube-cache-proxy` bin: `--help`, and a smoke test in front of
// the shared cluster (a LIST through it equals the apiserver's, SIGTERM exits 0).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { sharedCluster } from '../helpers/env.js';
import { call, closeAgents } from '../helpers/http.js';
import { repoRoot } from '../cluster/paths.js';
import { freePort } from '../cluster/processes.js';

const cluster = sharedCluster();
const root = repoRoot();
const work = mkdtempSync(join(tmpdir(), 'kcp-npm-package-'));
const packDir = join(work, 'pack');
const installDir = join(work, 'install');
const NS = `npm-package-${Date.now().toString(36)}`;
// The installed bin's shebang is `#!/usr/bin/env node`: it runs on the Node that runs these tests.
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`, KUBECONFIG: '' };

after(async () => {
  await closeAgents();
  await cluster.kubectl('admin', ['delete', 'namespace', NS, '--wait=false', '--ignore-not-found']);
  rmSync(work, { recursive: true, force: true });
});

interface Run { readonly code: number; readonly stdout: string; readonly stderr: string; readonly ms: number }

function run(cmd: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Run> {
  const start = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, [...args], { cwd, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
  });
}

const expectOk = (what: string, r: Run) => assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stderr.slice(-4000)}`);

interface PackEntry { readonly filename: string; readonly files: ReadonlyArray<{ readonly path: string }> }

function packEntry(stdout: string): PackEntry {
  // npm pack --json prints a JSON array of one entry (scripts' output goes to stderr with --silent).
  const v: unknown = JSON.parse(stdout.slice(stdout.indexOf('[')));
  if (!Array.isArray(v) || typeof v[0] !== 'object' || v[0] === null) throw new Error(`npm pack --json: ${stdout.slice(0, 300)}`);
  const e = v[0] as Record<string, unknown>;
  if (typeof e['filename'] !== 'string' || !Array.isArray(e['files'])) throw new Error('npm pack --json: no filename or files');
  const files = (e['files'] as unknown[]).map((f) => ({ path: typeof f === 'object' && f !== null ? String((f as Record<string, unknown>)['path']) : '' }));
  return { filename: e['filename'], files };
}

let bin = '';

test('npm pack: the tarball holds the proxy\'s compiled code, README and package.json, no tests, benchmarks or source maps; a prepack script builds it', async () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  assert.match(pkg.scripts?.['prepack'] ?? '', /npm run build/);
  // `npm test` has just built dist/: the prepack build is skipped here to keep the test fast.
  mkdirSync(packDir, { recursive: true });
  const r = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], root, 120_000);
  expectOk('npm pack', r);
  const entry = packEntry(r.stdout);
  const paths = entry.files.map((f) => f.path);
  process.stderr.write(`[npm-package] npm pack: ${r.ms} ms, ${paths.length} files, ${statSync(join(packDir, entry.filename)).size} bytes\n`);
  for (const p of ['package.json', 'README.md', 'dist/proxy/cli.js', 'dist/proxy/main.js', 'dist/cache/metrics.js', 'dist/flowcontrol/metrics.js']) {
    assert.ok(paths.includes(p), `the tarball holds ${p}`);
  }
  const unwanted = paths.filter((p) => p.startsWith('dist/test/') || p.startsWith('dist/bench/') || p.endsWith('.map') || p.endsWith('.ts') || p.startsWith('node_modules/'));
  assert.deepEqual(unwanted, []);
  assert.ok(paths.every((p) => p === 'package.json' || p === 'README.md' || p === 'LICENSE' || p.startsWith('dist/')), `only dist/, README, LICENSE: ${paths.filter((p) => !p.startsWith('dist/')).join(', ')}`);

  mkdirClean(installDir);
  const i = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', join(packDir, entry.filename)], installDir, 300_000);
  expectOk('npm install <tarball>', i);
  process.stderr.write(`[npm-package] npm install of the tarball: ${i.ms} ms (tests and the installed bin on Node ${process.version})\n`);
  bin = join(installDir, 'node_modules', '.bin', 'kube-cache-proxy');
  const script = readFileSync(join(installDir, 'node_modules', 'kube-cache-proxy', 'dist', 'proxy', 'cli.js'), 'utf8');
  assert.ok(script.startsWith('#!/usr/bin/env node\n'), 'the bin starts with #!/usr/bin/env node');
});

function mkdirClean(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // A package.json of its own, so that npm installs here and does not climb to a parent's.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'kcp-npm-package-test', private: true }));
}

test('the installed bin: --help exits 0 and prints the usage', async () => {
  assert.ok(bin, 'the package was installed');
  const r = await run(bin, ['--help'], installDir, 30_000);
  expectOk('kube-cache-proxy --help', r);
  assert.match(r.stdout, /kube-cache-proxy/);
  assert.match(r.stdout, /--kubeconfig/);
});

test('the installed bin in front of the shared cluster: a LIST through it equals the apiserver\'s, SIGTERM exits 0', async () => {
  assert.ok(bin, 'the package was installed');
  const admin = (args: string[]) => cluster.kubectl('admin', args);
  assert.equal((await admin(['create', 'namespace', NS])).code, 0);
  for (const name of ['a', 'b', 'c']) assert.equal((await admin(['-n', NS, 'create', 'configmap', name, `--from-literal=k=${name}`])).code, 0);

  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(bin, [
    '--kubeconfig', cluster.info.users.admin.kubeconfig,
    '--listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`,
    '--tls-cert-file', cluster.info.servingCertFile, '--tls-private-key-file', cluster.info.servingKeyFile,
  ], { cwd: installDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  try {
    // Ready: the cache's first LISTs done.
    const deadline = Date.now() + 30_000;
    let ready = false;
    while (!ready && Date.now() < deadline) {
      ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then((r) => r.ok, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(ready, `the installed proxy became ready within 30 s; stderr: ${stderr.slice(-2000)}`);

    const path = `/api/v1/namespaces/${NS}/configmaps`;
    const direct = await call(cluster, cluster.info.apiservers[0]?.url ?? '', path);
    const proxied = await call(cluster, `https://127.0.0.1:${port}`, path);
    assert.equal(proxied.status, 200, proxied.text());
    assert.equal(direct.status, 200);
    const items = (r: typeof direct) => {
      const v = r.json() as { items?: Array<{ metadata?: { name?: string; resourceVersion?: string } }> };
      return (v.items ?? []).map((i) => `${i.metadata?.name ?? ''}@${i.metadata?.resourceVersion ?? ''}`);
    };
    assert.deepEqual(items(proxied), items(direct));
    assert.deepEqual(items(proxied).map((s) => s.split('@')[0]), ['a', 'b', 'c']);
  } finally {
    child.kill('SIGTERM');
  }
  const exit = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
  if (exit === 'timeout') child.kill('SIGKILL');
  assert.deepEqual(exit, { code: 0, signal: null }, `SIGTERM: exit 0; stderr: ${stderr.slice(-2000)}`);
});
