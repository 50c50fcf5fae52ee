// The proxy's own kubeconfig loader, with kubectl's rules: --kubeconfig alone; else the files of
// KUBECONFIG merged (the first file to name a cluster, user or context wins, and the first to set
// current-context sets it); else the in-cluster service account; else ~/.kube/config. Relative file
// references resolve against the directory of the file that holds them. It replaces
// @kubernetes/client-node here, which costs ~65 MB of RSS to import for this small part of it.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { ConfigError } from './errors.js';

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeCluster {
  readonly server: string;
  readonly caFile: string | undefined;
  readonly caData: Buffer | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName: string | undefined;
}

export interface ExecEnvVar {
  readonly name: string;
  readonly value: string;
}

/** A client-go credential plugin (users[].user.exec). */
export interface ExecConfig {
  readonly apiVersion: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: readonly ExecEnvVar[];
  readonly interactiveMode: string | undefined;
  readonly provideClusterInfo: boolean;
}

export interface KubeUser {
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly clientCertificate: string | undefined;
  readonly clientCertificateData: Buffer | undefined;
  readonly clientKey: string | undefined;
  readonly clientKeyData: Buffer | undefined;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly exec: ExecConfig | undefined;
  /** The user's entry as written, its file references made absolute (for --write-kubeconfig). */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** The selected context: the apiserver, how to trust it, and whom the proxy is. */
export interface KubeConfig {
  readonly contextName: string;
  readonly namespace: string | undefined;
  readonly cluster: KubeCluster;
  readonly user: KubeUser;
}

export interface LoadOptions {
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
}

/** Where to look, injectable for tests. */
export interface LoadEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly home: string;
  readonly inClusterDir: string;
}

const processEnvironment = (): LoadEnvironment => ({ env: process.env, home: homedir(), inClusterDir: IN_CLUSTER_DIR });

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** One named entry of a kubeconfig list, with the directory of the file it came from. */
interface Named {
  readonly body: Rec;
  readonly dir: string;
}

interface Merged {
  readonly clusters: Map<string, Named>;
  readonly users: Map<string, Named>;
  readonly contexts: Map<string, Named>;
  currentContext: string | undefined;
  readonly files: readonly string[];
}

function parseFile(file: string): Rec {
  const text = readFileSync(file, 'utf8');
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (err) {
    throw new Error(`${file}: not valid YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  if (doc === undefined || doc === null) return {};
  if (!isRec(doc)) throw new Error(`${file}: not a kubeconfig (a YAML mapping with clusters, users and contexts)`);
  return doc;
}

function mergeInto(m: Merged, file: string, doc: Rec): void {
  const dir = dirname(resolve(file));
  const lists: Array<[string, string, Map<string, Named>]> = [['clusters', 'cluster', m.clusters], ['users', 'user', m.users], ['contexts', 'context', m.contexts]];
  for (const [list, field, into] of lists) {
    const entries = doc[list];
    if (entries === undefined || entries === null) continue;
    if (!Array.isArray(entries)) throw new Error(`${file}: ${list} must be a list`);
    entries.forEach((e: unknown, i) => {
      const name = isRec(e) ? str(e['name']) : undefined;
      if (!isRec(e) || name === undefined) throw new Error(`${file}: ${list}[${i}].name is missing`);
      const body = e[field] ?? {};
      if (!isRec(body)) throw new Error(`${file}: ${list}[${i}].${field} must be a mapping`);
      if (!into.has(name)) into.set(name, { body, dir });
    });
  }
  const current = str(doc['current-context']);
  if (m.currentContext === undefined && current !== undefined) m.currentContext = current;
}

function mergeFiles(files: readonly string[], mustExist: boolean): Merged {
  const m: Merged = { clusters: new Map(), users: new Map(), contexts: new Map(), currentContext: undefined, files };
  for (const f of files) {
    // kubectl skips a KUBECONFIG entry that does not exist, but not an explicit --kubeconfig.
    if (!mustExist && !existsSync(f)) continue;
    mergeInto(m, f, parseFile(f));
  }
  return m;
}

const absolute = (dir: string, p: string | undefined): string | undefined => (p === undefined ? undefined : isAbsolute(p) ? p : join(dir, p));

function base64(where: string, v: unknown): Buffer | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  if (!/^[A-Za-z0-9+/=\s]*$/.test(s)) throw new Error(`${where} is not base64`);
  return Buffer.from(s, 'base64');
}

function cluster(name: string, n: Named): KubeCluster {
  const b = n.body;
  const server = str(b['server']);
  if (server === undefined) throw new Error(`cluster "${name}" has no server`);
  if (str(b['proxy-url']) !== undefined) throw new Error(`cluster "${name}": proxy-url is not supported (the proxy connects to the apiserver directly)`);
  return {
    server: server.replace(/\/$/, ''),
    caFile: absolute(n.dir, str(b['certificate-authority'])),
    caData: base64(`cluster "${name}": certificate-authority-data`, b['certificate-authority-data']),
    insecureSkipTlsVerify: b['insecure-skip-tls-verify'] === true,
    tlsServerName: str(b['tls-server-name']),
  };
}

function execConfig(user: string, n: Named, v: unknown): ExecConfig | undefined {
  if (v === undefined || v === null) return undefined;
  const where = `user "${user}": exec`;
  if (!isRec(v)) throw new Error(`${where} must be a mapping`);
  const apiVersion = str(v['apiVersion']);
  if (apiVersion !== 'client.authentication.k8s.io/v1' && apiVersion !== 'client.authentication.k8s.io/v1beta1') {
    throw new Error(`${where}: apiVersion must be client.authentication.k8s.io/v1 or v1beta1, got ${JSON.stringify(v['apiVersion'] ?? null)}`);
  }
  let command = str(v['command']);
  if (command === undefined) throw new Error(`${where}: command is missing`);
  // As kubectl: a command with a directory part is relative to the kubeconfig; a bare name is looked up in PATH.
  if (command.includes('/') && !isAbsolute(command)) command = join(n.dir, command);
  const args = v['args'] ?? [];
  if (!Array.isArray(args) || !args.every((a): a is string => typeof a === 'string')) throw new Error(`${where}: args must be a list of strings`);
  const envList = v['env'] ?? [];
  if (!Array.isArray(envList)) throw new Error(`${where}: env must be a list`);
  const env = envList.map((e: unknown, i): ExecEnvVar => {
    if (!isRec(e) || typeof e['name'] !== 'string' || typeof e['value'] !== 'string') throw new Error(`${where}: env[${i}] must have a name and a value`);
    return { name: e['name'], value: e['value'] };
  });
  const interactiveMode = str(v['interactiveMode']);
  if (interactiveMode === 'Always') throw new Error(`${where}: interactiveMode Always needs a terminal, which the proxy has not`);
  return { apiVersion, command, args, env, interactiveMode, provideClusterInfo: v['provideClusterInfo'] === true };
}

function user(name: string, n: Named): KubeUser {
  const b = n.body;
  if (b['auth-provider'] !== undefined && b['auth-provider'] !== null) {
    throw new Error(`user "${name}": auth-provider is not supported (removed from kubectl; use an exec credential plugin)`);
  }
  const raw: Rec = {};
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined || v === null) continue;
    raw[k] = ['client-certificate', 'client-key', 'token-file'].includes(k) && typeof v === 'string' && v !== '' ? absolute(n.dir, v) : v;
  }
  const exec = execConfig(name, n, b['exec']);
  if (exec) raw['exec'] = { ...(isRec(b['exec']) ? b['exec'] : {}), command: exec.command };
  return {
    token: str(b['token']),
    tokenFile: absolute(n.dir, str(b['token-file'])),
    clientCertificate: absolute(n.dir, str(b['client-certificate'])),
    clientCertificateData: base64(`user "${name}": client-certificate-data`, b['client-certificate-data']),
    clientKey: absolute(n.dir, str(b['client-key'])),
    clientKeyData: base64(`user "${name}": client-key-data`, b['client-key-data']),
    username: str(b['username']),
    password: str(b['password']),
    exec,
    raw,
  };
}

function select(m: Merged, contextFlag: string | undefined): KubeConfig {
  const contextName = contextFlag ?? m.currentContext;
  if (contextName === undefined) throw new ConfigError(`--kubeconfig: no current-context in ${m.files.join(delimiter)} (pass --context)`);
  const ctx = m.contexts.get(contextName);
  if (!ctx) {
    if (contextFlag !== undefined) throw new ConfigError(`--context: context "${contextName}" not found in the kubeconfig`);
    throw new ConfigError(`--kubeconfig: current-context "${contextName}" not found in the kubeconfig`);
  }
  const clusterName = str(ctx.body['cluster']);
  if (clusterName === undefined) throw new ConfigError(`--kubeconfig: context "${contextName}" names no cluster`);
  const c = m.clusters.get(clusterName);
  if (!c) throw new ConfigError(`--kubeconfig: context "${contextName}" refers to cluster "${clusterName}", which is not in the kubeconfig`);
  const userName = str(ctx.body['user']);
  const u = userName === undefined ? { body: {}, dir: '' } : m.users.get(userName);
  if (!u) throw new ConfigError(`--kubeconfig: context "${contextName}" refers to user "${userName ?? ''}", which is not in the kubeconfig`);
  try {
    return { contextName, namespace: str(ctx.body['namespace']), cluster: cluster(clusterName, c), user: user(userName ?? '', u) };
  } catch (err) {
    throw new ConfigError(`--kubeconfig: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The in-cluster configuration: the service's address from the environment, the mounted token and CA. */
function inCluster(e: LoadEnvironment): KubeConfig {
  const host = e.env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = e.env['KUBERNETES_SERVICE_PORT'] || '443';
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const tokenFile = join(e.inClusterDir, 'token');
  const caFile = join(e.inClusterDir, 'ca.crt');
  const none = undefined;
  return {
    contextName: 'in-cluster',
    namespace: undefined,
    cluster: { server, caFile: existsSync(caFile) ? caFile : none, caData: none, insecureSkipTlsVerify: false, tlsServerName: none },
    user: {
      token: none, tokenFile, clientCertificate: none, clientCertificateData: none, clientKey: none, clientKeyData: none,
      username: none, password: none, exec: none, raw: { 'token-file': tokenFile },
    },
  };
}

/** Loads the context to proxy; every problem is a ConfigError naming the flag and the missing piece. */
export function loadKubeConfig(opts: LoadOptions, e: LoadEnvironment = processEnvironment()): KubeConfig {
  let merged: Merged;
  try {
    if (opts.kubeconfig) {
      merged = mergeFiles([opts.kubeconfig], true);
    } else if (e.env['KUBECONFIG']) {
      const files = e.env['KUBECONFIG'].split(delimiter).filter((f) => f !== '');
      merged = mergeFiles(files, false);
      if (merged.clusters.size + merged.contexts.size + merged.users.size === 0 && merged.currentContext === undefined) {
        throw new Error(`none of the KUBECONFIG files (${files.join(delimiter)}) holds a configuration`);
      }
    } else if (e.env['KUBERNETES_SERVICE_HOST'] && existsSync(join(e.inClusterDir, 'token'))) {
      if (opts.context) throw new ConfigError(`--context: context "${opts.context}" not found in the kubeconfig`);
      return inCluster(e);
    } else {
      const file = join(e.home, '.kube', 'config');
      if (!existsSync(file)) throw new Error(`no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ${file}, or run in a pod with a service account`);
      merged = mergeFiles([file], true);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`--kubeconfig: ${err instanceof Error ? err.message : String(err)}`);
  }
  return select(merged, opts.context);
}
