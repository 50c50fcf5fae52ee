// The apiservers the proxy forwards to, and the credentials it holds for them.
//
// Two kinds of connection per apiserver: `passthrough` trusts the apiserver's CA but presents no
// client certificate, so a client's request reaches the apiserver with only the client's own
// credentials; `identity` presents the proxy's own client certificate (if its kubeconfig has one)
// and is used with the proxy's Authorization for impersonated requests and, later, the cache.
import { Agent } from 'undici';
import type { ConnectionOptions } from 'node:tls';

export interface UpstreamTls {
  readonly ca?: Buffer | string | undefined;
  readonly cert?: Buffer | string | undefined;
  readonly key?: Buffer | string | undefined;
  readonly servername?: string | undefined;
  readonly rejectUnauthorized: boolean;
}

export interface ProxyCredentials {
  /** The proxy's own Authorization header value, if its kubeconfig has a token. */
  authorization(): string | undefined;
  /** Who the proxy's client certificate authenticates as, when that certificate is its only credential. */
  certificateIdentity?(): { readonly user: string; readonly groups: readonly string[] } | undefined;
}

export class UpstreamTarget {
  readonly origin: URL;
  readonly passthrough: Agent;
  readonly identity: Agent;
  readonly #tls: UpstreamTls;

  constructor(origin: URL, tls: UpstreamTls) {
    this.origin = origin;
    this.#tls = tls;
    const base = { ca: tls.ca, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized };
    const common = { bodyTimeout: 0, headersTimeout: 300_000, keepAliveTimeout: 30_000, connections: 256 };
    this.passthrough = new Agent({ ...common, connect: base });
    this.identity = new Agent({ ...common, connect: { ...base, cert: tls.cert, key: tls.key } });
  }

  /** TLS options for a raw connection (upgrades), with or without the proxy's client certificate. */
  connectOptions(withIdentity: boolean): ConnectionOptions {
    const t = this.#tls;
    const port = Number(this.origin.port || 443);
    const host = this.origin.hostname.replace(/^\[|\]$/g, '');
    return {
      host,
      port,
      ca: t.ca,
      servername: t.servername ?? (isIp(host) ? undefined : host),
      rejectUnauthorized: t.rejectUnauthorized,
      ALPNProtocols: ['http/1.1'],
      ...(withIdentity ? { cert: t.cert, key: t.key } : {}),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.passthrough.close(), this.identity.close()]);
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Round-robin over the configured apiservers (balancing and failover come with their own issue). */
export class UpstreamSet {
  readonly targets: readonly UpstreamTarget[];
  readonly credentials: ProxyCredentials;
  #next = 0;

  constructor(targets: readonly UpstreamTarget[], credentials: ProxyCredentials) {
    if (targets.length === 0) throw new Error('no upstream apiserver configured');
    this.targets = targets;
    this.credentials = credentials;
  }

  pick(): UpstreamTarget {
    const t = this.targets[this.#next % this.targets.length];
    this.#next = (this.#next + 1) % this.targets.length;
    if (!t) throw new Error('no upstream apiserver configured');
    return t;
  }

  async close(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.close()));
  }
}
