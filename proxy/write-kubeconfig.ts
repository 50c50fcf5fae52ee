// --write-kubeconfig: a kubeconfig that sends a client to the proxy with the source context's
// credentials, trusting the proxy's serving certificate.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
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
  // client-node leaves these relative to the working directory when --kubeconfig was a relative path,
  // but a kubeconfig's relative paths are relative to the kubeconfig file, which is elsewhere now.
  for (const k of ['client-certificate', 'client-key']) {
    const v = userBody[k];
    if (typeof v === 'string' && v !== '') userBody[k] = resolve(v);
  }
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

/**
 * Writes the kubeconfig with mode 0600 (it holds credentials) atomically: a temporary file beside it,
 * renamed over it. Writing in place would keep an existing file's mode, e.g. a world-readable 0644.
 */
export function writeProxyKubeconfig(file: string, kc: KubeConfig, proxyUrl: string, caPem: string | Buffer): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    rmSync(tmp, { force: true });
    writeFileSync(tmp, proxyKubeconfig(kc, proxyUrl, caPem), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
