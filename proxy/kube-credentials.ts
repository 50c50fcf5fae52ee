// The proxy's own credentials from its kubeconfig user: a token (inline, from a file re-read on
// refresh, or from an exec credential plugin re-run when its credential nears expiry), a client
// certificate (files, inline data, or the plugin's), or a username and password.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { ExecConfig, KubeCluster, KubeUser } from './kubeconfig.js';

export interface Credentials {
  readonly authorization: string | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  /** When an exec plugin's credential expires (ms since the epoch); undefined: it does not. */
  readonly expiresAt: number | undefined;
}

/** How long before its expiry an exec plugin's credential is replaced. */
const EXPIRY_MARGIN_MS = 90_000;
const EXEC_TIMEOUT_MS = 60_000;

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

async function fileContents(what: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new Error(`${what} ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

interface ExecResult {
  readonly token: string | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly expiresAt: number | undefined;
}

/** The ExecCredential a plugin prints, checked as client-go checks it. */
export function parseExecCredential(exec: ExecConfig, stdout: string): ExecResult {
  const where = `exec plugin ${exec.command}`;
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new Error(`${where}: its output is not JSON`);
  }
  if (!isRec(doc) || doc['kind'] !== 'ExecCredential') throw new Error(`${where}: its output is not an ExecCredential`);
  if (doc['apiVersion'] !== exec.apiVersion) throw new Error(`${where}: its ExecCredential is ${String(doc['apiVersion'])}, the kubeconfig asked for ${exec.apiVersion}`);
  const status = doc['status'];
  if (!isRec(status)) throw new Error(`${where}: its ExecCredential has no status`);
  const token = typeof status['token'] === 'string' && status['token'] !== '' ? status['token'] : undefined;
  const certPem = typeof status['clientCertificateData'] === 'string' && status['clientCertificateData'] !== '' ? status['clientCertificateData'] : undefined;
  const keyPem = typeof status['clientKeyData'] === 'string' && status['clientKeyData'] !== '' ? status['clientKeyData'] : undefined;
  if ((certPem === undefined) !== (keyPem === undefined)) throw new Error(`${where}: its ExecCredential has only one of clientCertificateData and clientKeyData`);
  if (token === undefined && certPem === undefined) throw new Error(`${where}: its ExecCredential has neither a token nor a client certificate`);
  let expiresAt: number | undefined;
  const exp = status['expirationTimestamp'];
  if (exp !== undefined && exp !== null) {
    expiresAt = typeof exp === 'string' ? Date.parse(exp) : NaN;
    if (Number.isNaN(expiresAt)) throw new Error(`${where}: its expirationTimestamp ${JSON.stringify(exp)} is not a time`);
  }
  return {
    token,
    cert: certPem === undefined ? undefined : Buffer.from(certPem),
    key: keyPem === undefined ? undefined : Buffer.from(keyPem),
    expiresAt,
  };
}

/** Runs the plugin with the environment and input client-go gives it (KUBERNETES_EXEC_INFO). */
export function runExecPlugin(exec: ExecConfig, cluster: KubeCluster): Promise<ExecResult> {
  const spec: Rec = { interactive: false };
  if (exec.provideClusterInfo) {
    const c: Rec = { server: cluster.server, 'insecure-skip-tls-verify': cluster.insecureSkipTlsVerify };
    if (cluster.tlsServerName) c['tls-server-name'] = cluster.tlsServerName;
    if (cluster.caData) c['certificate-authority-data'] = cluster.caData.toString('base64');
    spec['cluster'] = c;
  }
  const info = JSON.stringify({ apiVersion: exec.apiVersion, kind: 'ExecCredential', spec });
  const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: info };
  for (const v of exec.env) env[v.name] = v.value;
  return new Promise((resolve, reject) => {
    execFile(exec.command, [...exec.args], { env, timeout: EXEC_TIMEOUT_MS, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim().split('\n').slice(-3).join(' ');
        reject(new Error(`exec plugin ${exec.command}: ${err.message.split('\n')[0] ?? ''}${detail ? `: ${detail}` : ''}`));
        return;
      }
      try {
        resolve(parseExecCredential(exec, String(stdout)));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Resolves a user's credentials; `refresh` re-reads token files and re-runs a plugin near expiry. */
export class KubeCredentialSource {
  readonly #user: KubeUser;
  readonly #cluster: KubeCluster;
  readonly #now: () => number;
  #exec: ExecResult | undefined;
  #current: Credentials | undefined;

  constructor(user: KubeUser, cluster: KubeCluster, now: () => number = Date.now) {
    this.#user = user;
    this.#cluster = cluster;
    this.#now = now;
  }

  get current(): Credentials | undefined {
    return this.#current;
  }

  async refresh(): Promise<Credentials> {
    const u = this.#user;
    let authorization: string | undefined;
    let cert = u.clientCertificateData ?? (u.clientCertificate ? await fileContents('client-certificate', u.clientCertificate) : undefined);
    let key = u.clientKeyData ?? (u.clientKey ? await fileContents('client-key', u.clientKey) : undefined);
    if (u.token) authorization = `Bearer ${u.token}`;
    else if (u.tokenFile) {
      // As client-go: the file's content, surrounding whitespace trimmed.
      const t = (await fileContents('token-file', u.tokenFile)).toString('utf8').trim();
      if (t === '') throw new Error(`token-file ${u.tokenFile} is empty`);
      authorization = `Bearer ${t}`;
    } else if (u.username !== undefined || u.password !== undefined) {
      authorization = `Basic ${Buffer.from(`${u.username ?? ''}:${u.password ?? ''}`).toString('base64')}`;
    }
    let expiresAt: number | undefined;
    // A token or certificate written in the kubeconfig takes precedence over the plugin, as in client-go.
    if (u.exec && authorization === undefined && cert === undefined) {
      const cached = this.#exec;
      if (!cached || (cached.expiresAt !== undefined && cached.expiresAt - EXPIRY_MARGIN_MS <= this.#now())) {
        this.#exec = await runExecPlugin(u.exec, this.#cluster);
      }
      const r = this.#exec;
      if (r) {
        if (r.token) authorization = `Bearer ${r.token}`;
        cert = r.cert;
        key = r.key;
        expiresAt = r.expiresAt;
      }
    }
    if ((cert === undefined) !== (key === undefined)) throw new Error(cert ? 'a client certificate without a client key' : 'a client key without a client certificate');
    this.#current = { authorization, cert, key, expiresAt };
    return this.#current;
  }
}
