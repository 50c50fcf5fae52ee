// --write-kubeconfig: a kubeconfig that sends a client to the proxy with the source context's
// credentials, trusting the proxy's serving certificate.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { KubeConfig } from './kubeconfig.js';

/**
 * The user's fields carried over, in the order the written file has always had them; the loader
 * made file references absolute (a kubeconfig's relative paths are relative to the kubeconfig file,
 * which is elsewhere now). A token file stays a token file: kubectl re-reads it as it rotates.
 */
const USER_FIELDS = ['as', 'client-certificate-data', 'client-certificate', 'exec', 'client-key-data', 'client-key', 'token', 'token-file', 'password', 'username'];

export function proxyKubeconfig(kc: KubeConfig, proxyUrl: string, caPem: string | Buffer): string {
  const userBody: Record<string, unknown> = {};
  for (const k of USER_FIELDS) {
    const v = kc.user.raw[k];
    if (v !== undefined && v !== null) userBody[k] = v;
  }
  const name = `kube-cache-proxy-${kc.contextName || 'default'}`;
  const context: Record<string, string> = { cluster: name, user: name };
  if (kc.namespace) context['namespace'] = kc.namespace;
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
