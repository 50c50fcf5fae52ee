// --write-kubeconfig: a kubeconfig that sends a client to the proxy with the source context's
// credentials, trusting the proxy's serving certificate.
import { writeFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function proxyKubeconfig(kc: KubeConfig, proxyUrl: string, caPem: string | Buffer): string {
  const exported = record(JSON.parse(kc.exportConfig()) as unknown);
  const contextName = kc.getCurrentContext();
  const ctx = kc.getContextObject(contextName);
  const users = Array.isArray(exported['users']) ? exported['users'].map(record) : [];
  const user = users.find((u) => u['name'] === ctx?.user);
  const userBody: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record(user?.['user']))) if (v !== undefined && v !== null) userBody[k] = v;
  const name = `kube-cache-proxy-${contextName || 'default'}`;
  const context: Record<string, string> = { cluster: name, user: name };
  if (ctx?.namespace) context['namespace'] = ctx.namespace;
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: proxyUrl, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name, user: userBody }],
    contexts: [{ name, context }],
    'current-context': name,
  }, null, 2) + '\n';
}

export function writeProxyKubeconfig(file: string, kc: KubeConfig, proxyUrl: string, caPem: string | Buffer): void {
  writeFileSync(file, proxyKubeconfig(kc, proxyUrl, caPem), { mode: 0o600 });
}
