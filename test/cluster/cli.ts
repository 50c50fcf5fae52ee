// npm run cluster -- up [--dir DIR] [--apiservers N] [--distinct-addresses | --no-distinct-addresses] | down [--dir DIR] | build
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { TestCluster } from './cluster.js';
import { ensureClusterBinaries } from './build.js';
import { repoRoot } from './paths.js';

const usage = 'usage: npm run cluster -- up|down|build [--dir DIR] [--apiservers N] [--distinct-addresses | --no-distinct-addresses]\n' +
  '  --distinct-addresses: apiserver i on 127.0.0.(i+2), all on one port (the default with several apiservers)';

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: 'string' }, apiservers: { type: 'string' },
      'distinct-addresses': { type: 'boolean' }, 'no-distinct-addresses': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
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
      if (values['distinct-addresses'] && values['no-distinct-addresses']) throw new Error('--distinct-addresses and --no-distinct-addresses both given');
      const distinctAddresses = values['distinct-addresses'] ? true : values['no-distinct-addresses'] ? false : undefined;
      const c = await TestCluster.up({ dir, apiservers: n, log, distinctAddresses });
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
