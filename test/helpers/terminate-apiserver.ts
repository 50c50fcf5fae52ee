// Stopping an apiserver as a rolling restart does, for tests of what the proxy does meanwhile.
import { connect } from 'node:net';
import type { TestCluster } from '../cluster/cluster.js';
import { isAlive } from '../cluster/processes.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether something accepts TCP connections on host:port. */
export function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * SIGTERM: the apiserver stops listening at once and drains its short requests, then waits up to
 * 60 s for open watches (the proxy's) before giving up and exiting. That last wait is cut short:
 * a few seconds after it stopped listening, SIGKILL does what the timeout would do.
 */
export async function terminateApiserver(cluster: TestCluster, i: number): Promise<void> {
  const a = cluster.info.apiservers[i];
  if (!a?.pid) return;
  try {
    process.kill(a.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && await listening(a.host, a.port)) await sleep(50);
  // Still up a moment with its listener closed: open watches keep flowing, new connections fail.
  const exited = Date.now() + 2_000;
  while (Date.now() < exited && isAlive(a.pid)) await sleep(50);
  await cluster.stopApiserver(i, 'SIGKILL');
}
