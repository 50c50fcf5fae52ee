// The proxy's options: defaults, overridden by the --config file, overridden by flags.
import type { CacheConfig } from '../cache/config.js';
import type { FlowControlConfig } from '../flowcontrol/config.js';
import type { FlowControlSource } from './flow-control-source.js';

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
  readonly writeKubeconfig: string | undefined;
  readonly metricsListen: ListenAddress;
  readonly logLevel: LogLevel;
  readonly shutdownGracePeriodSeconds: number;
  /** The watch-fed cache; undefined: every request passes through. */
  readonly cache: CacheConfig | undefined;
  /** Flow control (on by default, with DEFAULT_FLOW_CONTROL). */
  readonly flowControl: FlowControlConfig;
  /** The file it was read from, reloaded on change and SIGHUP; undefined: no file. */
  readonly flowControlSource: FlowControlSource | undefined;
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
