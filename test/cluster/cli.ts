// npm run cluster -- up [--dir DIR] [--apiservers N] | down [--dir DIR] | build
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { TestCluster } from './cluster.js';
import { ensureClusterBinaries } from './build.js';
import { repoRoot } from './paths.js';

const usage = 'usage: npm run cluster -- up|down|build [--dir DIR] [--apiservers N]';

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { dir: { type: 'string' }, apiservers: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const dir = values.dir ?? join(repoRoot(), '.cache', 'cluster', 'local');
  const log = (m: string) => process.stderr.write(m + '\n');
  switch (positionals[0]) {
    case 'build':
      log((await ensureClusterBinaries(log)).kcluster);
      return 0;
    case 'up': {
      const n = Number(values.apiservers ?? '1');
      if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error('--apiservers must be 1..9');
      if (TestCluster.exists(dir)) await TestCluster.load(dir).down();
      const c = await TestCluster.up({ dir, apiservers: n, log });
      process.stdout.write(JSON.stringify(c.info, null, 2) + '\n');
      return 0;
    }
    case 'down':
      if (TestCluster.exists(dir)) await TestCluster.load(dir).down();
      return 0;
    default:
      log(usage);
      return values.help ? 0 : 2;
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`cluster: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
