// Builds test/cluster/kcluster (etcd, kube-apiserver, kubectl, pki in one Go binary) once into a
// git-ignored cache keyed by the sources' hash (test/tools/go-tool.ts).
import { existsSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensureGoTool } from '../tools/go-tool.js';
import { repoRoot } from './paths.js';

export const KUBERNETES_VERSION = 'v1.37.2';

export interface ClusterBinaries {
  readonly kcluster: string;
  readonly kubectl: string;
}

function ldflags(): string {
  const [major, minor] = KUBERNETES_VERSION.slice(1).split('.');
  const vars: string[] = [];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    vars.push(`-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`, `-X ${pkg}.gitMajor=${major}`, `-X ${pkg}.gitMinor=${minor}`);
  }
  return ['-s', '-w', ...vars].join(' ');
}

/** Returns the cluster binaries, building them first when the sources changed. */
export async function ensureClusterBinaries(log: (msg: string) => void = () => {}): Promise<ClusterBinaries> {
  const build = { moduleDir: join(repoRoot(), 'test', 'cluster'), pkg: './kcluster', name: 'kcluster', cache: 'cluster', salt: KUBERNETES_VERSION, ldflags: ldflags() };
  const kcluster = await ensureGoTool(build, log);
  const kubectl = join(dirname(kcluster), 'kubectl');
  if (!existsSync(kubectl)) symlinkSync('kcluster', kubectl);
  return { kcluster, kubectl };
}
