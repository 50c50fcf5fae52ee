// npm test: builds (once) and starts a real cluster, runs every test file against it with node:test,
// stops the cluster. Files needing a cluster of their own (restarts, several apiservers) start one.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
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

/** A test (or hook) running longer than this fails, and the run goes on to the next. */
const TEST_TIMEOUT_MS = 10 * 60_000;
/** With no output at all for this long the run is stuck (a hook or a file that never exits): it is stopped. */
const STALL_MS = Number(process.env['KCP_TEST_STALL_MINUTES'] ?? 15) * 60_000;

/**
 * Passes the test runner's output through and stops the run when it has said nothing for STALL_MS,
 * naming the test files still running, so that a hang fails within minutes with its place instead
 * of holding CI until its own time limit.
 */
function watchdog(child: ChildProcess, log: (m: string) => void): () => void {
  let last = Date.now();
  child.stdout?.on('data', (d: Buffer) => { last = Date.now(); process.stdout.write(d); });
  child.stderr?.on('data', (d: Buffer) => { last = Date.now(); process.stderr.write(d); });
  const timer = setInterval(() => {
    if (Date.now() - last < STALL_MS) return;
    clearInterval(timer);
    const running = spawnSync('ps', ['-o', 'pid,etime,args', '--ppid', String(child.pid)], { encoding: 'utf8' }).stdout;
    log(`no test output for ${(STALL_MS / 60_000).toFixed(1)} minutes: stopping the run. Still running:\n${running}`);
    spawnSync('pkill', ['-KILL', '-P', String(child.pid)]);
    child.kill('SIGKILL');
  }, 10_000);
  timer.unref();
  return () => clearInterval(timer);
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
      const child = spawn(process.execPath, [
        '--test', '--test-reporter=spec', `--test-timeout=${TEST_TIMEOUT_MS}`,
        ...files.map((f) => relative(process.cwd(), f)),
      ], {
        stdio: ['inherit', 'pipe', 'pipe'],
        env: { ...process.env, [CLUSTER_ENV]: dir },
      });
      const stopWatchdog = watchdog(child, log);
      child.on('exit', (c, sig) => {
        stopWatchdog();
        resolve(c ?? (sig ? 1 : 0));
      });
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
