// The Dockerfile against what it packages: Node.js major, version label, entrypoint, user, and the
// directories it builds and copies against what the proxy's code imports. The image itself cannot be
// built here (no Docker daemon, no base image to pull), so these are the checks that can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import yaml from 'js-yaml';
import { repoRoot } from '../cluster/paths.js';

const root = repoRoot();
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(root, '.dockerignore'), 'utf8');

function packageJson(): { version: string; engines: Record<string, string>; bin: Record<string, string>; devDependencies: Record<string, string> } {
  const v: unknown = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (typeof v !== 'object' || v === null) throw new Error('package.json is not an object');
  const o = v as Record<string, unknown>;
  const rec = (k: string): Record<string, string> => {
    const x = o[k];
    if (typeof x !== 'object' || x === null) throw new Error(`package.json: ${k} is not an object`);
    return x as Record<string, string>;
  };
  if (typeof o['version'] !== 'string') throw new Error('package.json: no version');
  return { version: o['version'], engines: rec('engines'), bin: rec('bin'), devDependencies: rec('devDependencies') };
}

/** Instructions as [keyword, rest], continuation lines joined, comments dropped. */
function instructions(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let cur = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    cur += line.replace(/\\$/, ' ');
    if (line.endsWith('\\')) continue;
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(cur);
    if (m?.[1] && m[2] !== undefined) out.push([m[1], m[2].trim()]);
    cur = '';
  }
  return out;
}

const ins = instructions(dockerfile);
const stages = (() => {
  const s: Array<Array<[string, string]>> = [];
  for (const i of ins) {
    if (i[0] === 'FROM') s.push([]);
    s.at(-1)?.push(i);
  }
  return s;
})();
const argDefault = (name: string): string | undefined => {
  for (const [k, rest] of ins) {
    const m = new RegExp(`^${name}=(\\S+)$`).exec(rest);
    if (k === 'ARG' && m) return m[1];
  }
  return undefined;
};

test('image: two stages on the current Node.js LTS slim image, the same major as engines and the devDependency node', () => {
  const pkg = packageJson();
  assert.equal(stages.length, 2, 'a build stage and a runtime stage');
  const image = argDefault('NODE_IMAGE');
  assert.equal(image, 'node:24-slim');
  for (const s of stages) assert.match(s[0]?.[1] ?? '', /^\$\{NODE_IMAGE\}( AS \w+)?$/, 'every stage starts FROM ${NODE_IMAGE}');
  const major = /^node:(\d+)-slim$/.exec(image ?? '')?.[1];
  assert.equal(pkg.engines['node'], `>=${major}`);
  assert.match(pkg.devDependencies['node'] ?? '', new RegExp(`^\\^${major}\\.`));
});

test('image: version label equals package.json and the chart appVersion; repository as the chart names it', () => {
  const pkg = packageJson();
  assert.equal(argDefault('VERSION'), pkg.version);
  assert.match(dockerfile, /org\.opencontainers\.image\.version="\$\{VERSION\}"/);
  const chart = yaml.load(readFileSync(join(root, 'charts', 'kube-cache-proxy', 'Chart.yaml'), 'utf8')) as { appVersion?: unknown };
  assert.equal(String(chart.appVersion), pkg.version);
  const values = yaml.load(readFileSync(join(root, 'charts', 'kube-cache-proxy', 'values.yaml'), 'utf8')) as { image?: { repository?: unknown } };
  assert.equal(values.image?.repository, 'ghcr.io/kube-cache-proxy/kube-cache-proxy');
  assert.match(dockerfile, /^# .*docker build -t ghcr\.io\/kube-cache-proxy\/kube-cache-proxy:/m);
});

test('image: runtime stage runs the package bin as a numeric non-root user', () => {
  const pkg = packageJson();
  const runtime = stages[1] ?? [];
  const user = runtime.find(([k]) => k === 'USER')?.[1] ?? '';
  assert.match(user, /^[1-9]\d*(:\d+)?$/, 'numeric, non-zero user (runAsNonRoot can verify it)');
  const entrypoint: unknown = JSON.parse(runtime.find(([k]) => k === 'ENTRYPOINT')?.[1] ?? 'null');
  assert.deepEqual(entrypoint, ['node', pkg.bin['kube-cache-proxy']]);
  assert.equal(runtime.some(([k]) => k === 'RUN'), false, 'the runtime stage only copies (nothing runs as root in it)');
});

/** Top-level directories reached by the relative imports of `entry`, transitively. */
function importedDirs(entry: string): Set<string> {
  const seen = new Set<string>();
  const dirs = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    dirs.add(relative(root, file).split('/')[0] ?? '');
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
      const target = resolve(dirname(file), `${m[1] ?? ''}.ts`);
      assert.ok(existsSync(target), `${relative(root, file)} imports ${m[1] ?? ''}.js, whose source is not found`);
      visit(target);
    }
  };
  visit(join(root, entry));
  return dirs;
}

test('image: the directories built and copied are exactly those the proxy imports, and the build context lets them in', () => {
  const needed = [...importedDirs('proxy/cli.ts')].sort();
  assert.ok(needed.includes('proxy') && needed.includes('cache'), `imports reach ${needed.join(', ')}`);
  const build = stages[0] ?? [];
  const copiedSources = build.filter(([k]) => k === 'COPY').map(([, r]) => r.split(/\s+/)[0] ?? '').filter((p) => !p.includes('.json')).sort();
  assert.deepEqual(copiedSources, needed, 'the build stage copies the proxy\'s source directories');
  const runtime = stages[1] ?? [];
  const copiedDist = runtime.filter(([k, r]) => k === 'COPY' && r.includes('/src/dist/')).map(([, r]) => /\/src\/dist\/(\S+)/.exec(r)?.[1] ?? '').sort();
  assert.deepEqual(copiedDist, needed, 'the runtime stage copies their compiled code');
  const allowed = dockerignore.split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1));
  for (const d of needed) assert.ok(allowed.includes(`${d}/**`), `.dockerignore lets ${d}/ in`);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json']) assert.ok(allowed.includes(f), `.dockerignore lets ${f} in`);
  assert.ok(dockerignore.split('\n').includes('**'), '.dockerignore starts from nothing');
});
