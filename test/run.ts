// npm test: builds (once) and starts a real cluster, runs every test file against it with node:test,
// stops the cluster. Files needing a cluster of their own (restarts, several apiservers) start one.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { TestCluster } from './cluster/cluster.js';
import { repoRoot } from './cluster/paths.js';
import { CLUSTER_ENV } from './helpers/env.js';

function testFiles(dir: string, filter: string | undefined): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p, filter));
    else if (name.endsWith('.test.js') && (!filter || p.includes(filter))) out.push(p);
  }
  return out.sort();
}

async function main(): Promise<number> {
  const filter = process.argv[2];
  const files = testFiles(join(repoRoot(), 'dist', 'test'), filter);
  if (files.length === 0) {
    process.stderr.write(`[test] no test file matches ${JSON.stringify(filter)}\n`);
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'kcp-test-cluster-'));
  const log = (m: string) => process.stderr.write(`[test] ${m}\n`);
  const cluster = await TestCluster.up({ dir, apiservers: 1, log });
  let code = 1;
  try {
    log(`running ${files.length} test files`);
    code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--test', '--test-reporter=spec', ...files.map((f) => relative(process.cwd(), f))], {
        stdio: 'inherit',
        env: { ...process.env, [CLUSTER_ENV]: dir },
      });
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
    });
  } finally {
    await cluster.down();
    if (code === 0) rmSync(dir, { recursive: true, force: true });
    else log(`cluster logs kept in ${dir}/logs`);
  }
  return code;
}

main().then((c) => process.exit(c), (err: unknown) => {
  process.stderr.write(`[test] ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
