// The proxy's options: defaults, overridden by the --config file, overridden by flags.
import type { CacheConfig } from '../cache/config.js';
import type { FlowControlConfig } from '../flowcontrol/config.js';
import type { FlowControlSource } from './flow-control-source.js';
import type { TlsVersionName } from './tls-options.js';
import type { ConnectionLimits } from './connection-limits.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface ProxyOptions {
  readonly kubeconfig: string | undefined;
  readonly context: string | undefined;
  readonly upstreams: readonly string[];
  readonly listen: ListenAddress;
  readonly tlsCertFile: string | undefined;
  readonly tlsPrivateKeyFile: string | undefined;
  readonly clientCaFile: string | undefined;
  /** --tls-min-version (default VersionTLS12). */
  readonly tlsMinVersion?: TlsVersionName | undefined;
  /** --tls-cipher-suites, Go's names (default: Node's TLS 1.2 suites). */
  readonly tlsCipherSuites?: readonly string[] | undefined;
  readonly writeKubeconfig: string | undefined;
  readonly metricsListen: ListenAddress;
  /** The metrics port: plain HTTP (undefined too), TLS, or TLS with /metrics authenticated and authorized. */
  readonly metricsMode?: MetricsMode | undefined;
  readonly logLevel: LogLevel;
  readonly shutdownGracePeriodSeconds: number;
  /** The watch-fed cache; undefined: every request passes through. */
  readonly cache: CacheConfig | undefined;
  /** Flow control (on by default, with DEFAULT_FLOW_CONTROL). */
  readonly flowControl: FlowControlConfig;
  /** The file it was read from, reloaded on change and SIGHUP; undefined: no file. */
  readonly flowControlSource: FlowControlSource | undefined;
  /** The apiservers: discovery, balancing, health and reshuffling. */
  readonly backends: BackendOptions;
  /** Caps on client connections and their timeouts; undefined: DEFAULT_CONNECTION_LIMITS. */
  readonly connectionLimits?: ConnectionLimits | undefined;
}

export const BALANCE_POLICIES = ['least-outstanding', 'round-robin'] as const;
export type BalancePolicy = (typeof BALANCE_POLICIES)[number];

export interface BackendOptions {
  /** Follow the `kubernetes` EndpointSlices in namespace `default` instead of a fixed list. */
  readonly discovery: boolean;
  /** Least outstanding requests (default) or weighted round-robin. */
  readonly balance: BalancePolicy;
  /** How often each apiserver's /readyz is checked (an ejected one: every second). */
  readonly healthIntervalSeconds: number;
  /** Upstream connections are closed once idle after this age (plus jitter); 0: never. */
  readonly connectionMaxAgeSeconds: number;
  /** Client watches the proxy forwards are ended cleanly after this age (plus jitter); 0: never. */
  readonly forwardedWatchMaxAgeSeconds: number;
  /** Client connections get GOAWAY (HTTP/2) or `Connection: close` (HTTP/1.1) after this age (plus jitter); 0: never. */
  readonly clientConnectionMaxAgeSeconds: number;
  /** Each age above is stretched by a random fraction in [0, jitter) of itself. */
  readonly maxAgeJitter: number;
}

export const DEFAULT_BACKEND_OPTIONS: BackendOptions = {
  discovery: false,
  balance: 'least-outstanding',
  healthIntervalSeconds: 2,
  connectionMaxAgeSeconds: 300,
  forwardedWatchMaxAgeSeconds: 300,
  clientConnectionMaxAgeSeconds: 600,
  maxAgeJitter: 0.2,
};

/** `age` stretched by a random fraction in [0, jitter) of itself, in milliseconds (0 stays 0: never). */
export function jitteredMs(ageSeconds: number, jitter: number, random: () => number = Math.random): number {
  return ageSeconds <= 0 ? 0 : ageSeconds * 1000 * (1 + jitter * random());
}

export const METRICS_MODES = ['plain', 'tls', 'tls-authn'] as const;
export type MetricsMode = (typeof METRICS_MODES)[number];

export function isMetricsMode(v: string): v is MetricsMode {
  return (METRICS_MODES as readonly string[]).includes(v);
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_LISTEN = ':8443';
export const DEFAULT_METRICS_LISTEN = ':9443';

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

/** host:port, :port (all interfaces) or [v6]:port. Returns an error message on failure. */
export function parseListen(v: string): ListenAddress | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
  if (!m) return `must be host:port, :port or [ipv6]:port, got "${v}"`;
  const port = Number(m[3]);
  if (port > 65535) return `port out of range in "${v}"`;
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port };
}
