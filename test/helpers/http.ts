// Requests to the apiserver or the proxy as one of the test users, for differential tests.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { TestCluster } from '../cluster/cluster.js';

export type TestUser = 'admin' | 'viewer' | 'nobody' | 'node1' | 'anonymous';

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  text(): string;
  json(): unknown;
}

const agents = new Map<string, Agent>();

function agentFor(cluster: TestCluster, user: TestUser): Agent {
  const key = `${cluster.info.dir}|${user}`;
  let a = agents.get(key);
  if (!a) {
    const u = user === 'node1' ? cluster.info.users.node1 : undefined;
    a = new Agent({
      connect: {
        ca: readFileSync(cluster.info.caFile),
        ...(u?.certFile && u.keyFile ? { cert: readFileSync(u.certFile), key: readFileSync(u.keyFile) } : {}),
      },
    });
    agents.set(key, a);
  }
  return a;
}

export interface CallOptions {
  readonly user?: TestUser;
  readonly method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
}

export async function call(cluster: TestCluster, base: string, path: string, o: CallOptions = {}): Promise<Reply> {
  const user = o.user ?? 'admin';
  const headers: Record<string, string> = { ...o.headers };
  const token = user === 'admin' || user === 'viewer' || user === 'nobody' ? cluster.info.users[user].token : undefined;
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (o.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  const res = await request(`${base}${path}`, { method: o.method ?? 'GET', headers, body: o.body, dispatcher: agentFor(cluster, user) });
  const body = Buffer.from(await res.body.arrayBuffer());
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    text: () => body.toString('utf8'),
    json: () => JSON.parse(body.toString('utf8')) as unknown,
  };
}

/** The same request sent straight to the first apiserver and through the proxy. */
export async function both(cluster: TestCluster, proxyUrl: string, path: string, o: CallOptions = {}): Promise<{ direct: Reply; proxied: Reply }> {
  const direct = await call(cluster, cluster.info.apiservers[0]?.url ?? '', path, o);
  const proxied = await call(cluster, proxyUrl, path, o);
  return { direct, proxied };
}

export async function closeAgents(): Promise<void> {
  await Promise.all([...agents.values()].map((a) => a.close()));
  agents.clear();
}
