// helm, built from its Go module (helm.sh/helm/v4, pinned in test/tools/helm/go.mod as a `tool`) by
// ensureGoTool, for the chart's tests: lint, template. Nothing is downloaded at run time but Go modules.
import { join } from 'node:path';
import { repoRoot } from '../cluster/paths.js';
import { ensureGoTool, goToolDir, type GoToolBuild } from './go-tool.js';
import { existsSync } from 'node:fs';

export const HELM_VERSION = 'v4.3.2';

const build: GoToolBuild = {
  moduleDir: join(repoRoot(), 'test', 'tools', 'helm'),
  pkg: 'helm.sh/helm/v4/cmd/helm',
  name: 'helm',
  salt: HELM_VERSION,
  // helm's own version string (`helm version`), as its release builds set it.
  ldflags: `-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}`,
};

/** The path of the helm binary, building it first (about a minute or two on 2 cores) when needed. */
export async function ensureHelm(log: (msg: string) => void = () => {}): Promise<string> {
  if (!existsSync(join(goToolDir(build), 'helm'))) log(`building helm ${HELM_VERSION} from its Go module (first build: minutes)`);
  return ensureGoTool(build, log);
}
