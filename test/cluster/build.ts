// Builds test/cluster/kcluster (etcd, kube-apiserver, kubectl, pki in one Go binary) once into a
// git-ignored cache keyed by the sources' hash; later runs reuse it, and Go's own caches.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, mkdirSync, symlinkSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export const KUBERNETES_VERSION = 'v1.37.2';

export interface ClusterBinaries {
  readonly kcluster: string;
  readonly kubectl: string;
}

function sourceHash(moduleDir: string): string {
  const h = createHash('sha256');
  h.update(KUBERNETES_VERSION);
  for (const f of ['go.mod', 'go.sum']) h.update(readFileSync(join(moduleDir, f)));
  const srcDir = join(moduleDir, 'kcluster');
  for (const f of readdirSync(srcDir).sort()) {
    if (f.endsWith('.go')) h.update(f).update(readFileSync(join(srcDir, f)));
  }
  return h.digest('hex').slice(0, 16);
}

function ldflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
  const vars: string[] = [];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    vars.push(`-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`, `-X ${pkg}.gitMajor=${major}`, `-X ${pkg}.gitMinor=${minor}`);
  }
  return ['-s', '-w', ...vars].join(' ');
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

/** Returns the cluster binaries, building them first when the sources changed. */
export async function ensureClusterBinaries(log: (msg: string) => void = () => {}): Promise<ClusterBinaries> {
  const moduleDir = join(repoRoot(), 'test', 'cluster');
  const outDir = join(repoRoot(), '.cache', 'cluster', 'bin', sourceHash(moduleDir));
  const kcluster = join(outDir, 'kcluster');
  const kubectl = join(outDir, 'kubectl');
  if (!existsSync(kcluster)) {
    mkdirSync(outDir, { recursive: true });
    log(`building kube-apiserver, etcd and kubectl ${KUBERNETES_VERSION} into ${outDir} (first build: several minutes)`);
    const env = { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' };
    const tmp = `${kcluster}.tmp`;
    await run('go', ['build', '-ldflags', ldflags(), '-o', tmp, './kcluster'], moduleDir, env);
    renameSync(tmp, kcluster);
  }
  if (!existsSync(kubectl)) symlinkSync('kcluster', kubectl);
  return { kcluster, kubectl };
}
