// The dashboard schema checker (test/tools/dashboards/): Grafana dashboard JSON decoded strictly
// into the grafana-foundation-sdk's dashboard types, built once by ensureGoTool.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../cluster/paths.js';
import { ensureGoTool } from './go-tool.js';

/** Returns the path of the `dashboard-check` binary, building it first when its sources changed. */
export function ensureDashboardCheck(log: (msg: string) => void = () => {}): Promise<string> {
  return ensureGoTool({ moduleDir: join(repoRoot(), 'test', 'tools', 'dashboards'), pkg: '.', name: 'dashboard-check' }, log);
}

export interface DashboardCheckResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the checker on `files`: exit code 0 when every file passes, else 1 with the problems on stderr. */
export async function runDashboardCheck(files: readonly string[]): Promise<DashboardCheckResult> {
  const bin = await ensureDashboardCheck();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...files], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
