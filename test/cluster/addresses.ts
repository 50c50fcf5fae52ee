// Where the test cluster's apiservers listen. One apiserver keeps 127.0.0.1; several get one loopback
// address each (127.0.0.2, 127.0.0.3, …) on one shared port, like the apiservers of a real control
// plane (one host each, all on the same port). A client then tells them apart by address, and the
// `kubernetes` Service's targetPort is right for every one of them.
import { createServer } from 'node:net';

/** The address of apiserver i: 127.0.0.(i+2) when each has its own, else 127.0.0.1 for all. */
export function apiserverHost(i: number, distinct: boolean): string {
  return distinct ? `127.0.0.${i + 2}` : '127.0.0.1';
}

function listenOnce(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, host, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr !== null ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/** A port that was free a moment ago on every one of `hosts` (and on 127.0.0.1, to avoid confusion). */
export async function portFreeOnAll(hosts: readonly string[]): Promise<number> {
  const all = [...new Set(['127.0.0.1', ...hosts])];
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(all[0] ?? '127.0.0.1', 0);
    if (port === undefined) continue;
    let free = true;
    for (const h of all.slice(1)) {
      if (await listenOnce(h, port) === undefined) {
        free = false;
        break;
      }
    }
    if (free) return port;
  }
  throw new Error(`no port free on all of ${all.join(' ')}`);
}
