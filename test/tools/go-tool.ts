// Builds a Go program of the test tooling (the test cluster, helm, schema checkers) once into a
// git-ignored cache keyed by a hash of its module's sources; later runs reuse it, and Go's own caches.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../cluster/paths.js';

export interface GoToolBuild {
  /** The Go module's directory (holds go.mod and go.sum). */
  readonly moduleDir: string;
  /** The package to build, relative to the module: `./kcluster`, `.`. */
  readonly pkg: string;
  /** The binary's name. */
  readonly name: string;
  /** The folder under `.cache/` (default: the name). */
  readonly cache?: string;
  /** Extra inputs of the hash (a version the ldflags carry). */
  readonly salt?: string;
  readonly ldflags?: string;
}

/** go.mod, go.sum and every .go file under the module (sorted), plus the salt. */
function sourceHash(b: GoToolBuild): string {
  const h = createHash('sha256');
  h.update(b.salt ?? '').update(b.pkg).update(b.ldflags ?? '');
  const walk = (dir: string): void => {
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.go') || f === 'go.mod' || f === 'go.sum') h.update(relative(b.moduleDir, p)).update(readFileSync(p));
    }
  };
  walk(b.moduleDir);
  return h.digest('hex').slice(0, 16);
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

/** The directory the build of `b` is cached in: `.cache/<cache or name>/bin/<hash>/`. */
export function goToolDir(b: GoToolBuild): string {
  return join(repoRoot(), '.cache', b.cache ?? b.name, 'bin', sourceHash(b));
}

/** Returns the path of the built binary, building it first when its sources changed. */
export async function ensureGoTool(b: GoToolBuild, log: (msg: string) => void = () => {}): Promise<string> {
  const outDir = goToolDir(b);
  const bin = join(outDir, b.name);
  if (existsSync(bin)) return bin;
  mkdirSync(outDir, { recursive: true });
  log(`building ${b.name} into ${outDir} (first build: minutes)`);
  const env = { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' };
  const tmp = `${bin}.tmp`;
  await run('go', ['build', ...(b.ldflags ? ['-ldflags', b.ldflags] : []), '-o', tmp, b.pkg], b.moduleDir, env);
  renameSync(tmp, bin);
  return bin;
}
