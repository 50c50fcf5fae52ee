// Command-line flags of kube-cache-proxy.
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.js';
import { loadConfigFile } from './config-file.js';
import { cacheConfigFrom } from './cache-options.js';
import { loadFlowControlConfig, type FlowControlSource } from './flow-control-source.js';
import { DEFAULT_FLOW_CONTROL } from '../flowcontrol/defaults.js';
import { cipherSuitesError, tlsVersionError, type TlsVersionName } from './tls-options.js';
import {
  BALANCE_POLICIES, DEFAULT_BACKEND_OPTIONS, DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN, LOG_LEVELS, METRICS_MODES, isLogLevel, isMetricsMode, parseListen,
  type BackendOptions, type BalancePolicy, type ListenAddress, type ProxyOptions,
} from './options.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './connection-limits.js';

function isBalancePolicy(v: string): v is BalancePolicy {
  return (BALANCE_POLICIES as readonly string[]).includes(v);
}

export const HELP = `kube-cache-proxy: a caching reverse proxy for kube-apiserver.

Usage: kube-cache-proxy [flags]

Upstream:
  --kubeconfig FILE            kubeconfig with the apiserver and the proxy's own credentials
                               (default: in-cluster service account in a pod, else $KUBECONFIG or ~/.kube/config)
  --context NAME               kubeconfig context (default: its current context)
  --upstream URL               apiserver URL, repeatable (default: the context's server); "#weight=N"
                               at its end weighs it for round-robin
  --upstream-discovery         follow the apiservers listed in the kubernetes EndpointSlices of namespace
                               default (starting from --upstream or the context's server)
  --upstream-balance POLICY    ${BALANCE_POLICIES.join('|')} (default least-outstanding)
  --upstream-health-interval SEC  how often each apiserver's /readyz is checked (default 2)
  --upstream-connection-max-age SEC  recycle upstream connections after this age plus jitter (default 300; 0: never)
  --forwarded-watch-max-age SEC  end client watches the proxy forwards after this age plus jitter, so that
                               clients re-watch where it is best now (default 300; 0: never)
  --client-connection-max-age SEC  HTTP/2 GOAWAY or HTTP/1.1 Connection: close after this age plus jitter,
                               so clients spread over the proxy's replicas (default 600; 0: never)
  --max-age-jitter FRACTION    each max age is stretched by a random fraction below this (default 0.2)
Serving:
  --listen HOST:PORT           main TLS port, everything passes through here (default ${DEFAULT_LISTEN})
  --tls-cert-file FILE         serving certificate (PEM, chain allowed); default: a generated self-signed one
  --tls-private-key-file FILE  its private key
  --client-ca-file FILE        verify client certificates against this CA; such clients are forwarded
                               with Impersonate-User/-Group under the proxy's own credentials
                               (these three files are reloaded when they change, for new connections)
  --tls-min-version VERSION    VersionTLS12 or VersionTLS13 (default VersionTLS12)
  --tls-cipher-suites LIST     TLS 1.2 cipher suites, comma-separated Go/IANA names as kube-apiserver's
                               (e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); insecure ones are refused,
                               TLS 1.3 ones accepted and not configurable (default: kube-apiserver's,
                               the ECDHE suites Go calls secure)
  --metrics-listen HOST:PORT   port for /metrics, /healthz, /livez, /readyz (default ${DEFAULT_METRICS_LISTEN})
  --metrics-mode MODE          ${METRICS_MODES.join('|')}: the metrics port in plain HTTP (default); over TLS with
                               the serving certificate of --listen; or over TLS with /metrics only for clients
                               authenticated (a token by TokenReview, or a --client-ca-file certificate)
                               and authorized (SubjectAccessReview: get on the non-resource URL /metrics);
                               /healthz, /livez, /readyz stay open
  --shutdown-grace-period SEC  on SIGTERM, how long in-flight requests may take to finish (default 30)
  --max-connections N          client connections open at once; past it new ones get a 503 Status with
                               Retry-After and are closed (default 20000; 0: no cap)
  --max-connections-per-source N  the same per source address, answered 429 (default 10000, so that
                               thousands of nodes behind one NAT address fit; 0: no cap)
  --request-header-timeout SEC  a request's headers must arrive within SEC, and a new connection's first
                               request too (default 32, as kube-apiserver's ReadHeaderTimeout)
  --request-body-timeout SEC   a request's body must arrive within SEC of its headers, else 408 (default 60;
                               requests without a body, watches among them, are not affected)
  --write-stall-timeout SEC    a response whose client takes none of its waiting bytes for SEC is cut
                               (default 60)
Cache (LIST and GET resourceVersion=0 answered from watch-fed memory, same answers and consistency):
  --cache-resources LIST       resource[.group][/version],... to cache, or "none" (default
                               pods,nodes,namespaces,services,endpointslices.discovery.k8s.io,configmaps;
                               secrets only when listed)
  --cache-indexed-fields LIST  resource=field,... with an index of their own (default pods=spec.nodeName)
  --cache-page-size N          page size of the cache's own LISTs (default 500)
  --cache-bookmark-interval SEC  how often a quiet resource proves freshness with a short watch (default 0.5; 0: never)
  --cache-freshness-wait SEC   how long a watch may wait for the cache to catch up, then it is forwarded (default 3)
  --cache-freshness-budget SEC  how long a consistent LIST may wait for the cache to catch up, then it is
                               forwarded (default 0.1)
  --cache-quiet-after SEC      a resource behind with no event for SEC is predicted quiet: its consistent
                               LISTs are forwarded at once instead of waiting for a bookmark (default 1; 0: never)
  --cache-snapshot-ttl SEC     how long continue tokens of paged lists stay valid (default 300)
  --cache-stale-after SEC      a resource whose watch cannot be re-established stops answering
                               resourceVersion=0 reads and new watches from memory after SEC (default 5)
  --cache-authorization-ttl SEC  let an allowed probe stand in for later ones of the same client and
                               request for resourceVersion=0 reads, trading up to SEC of revocation delay
                               for fewer apiserver round trips (default 0: every read is probed)
Authorization of cache-served reads (see the README, "Authorization modes"):
  --authorization-mode MODE    probe: each read is authorized by a request upstream with the client's own
                               credentials (default); local: by TokenReview and SubjectAccessReview sent
                               with the proxy's credentials, their answers remembered for the TTLs below
  --authorization-allowed-ttl SEC  local mode: how long an authenticated token and an allowed decision are
                               remembered, the longest a revoked token or permission may still be
                               honoured (default 10)
  --authorization-denied-ttl SEC  local mode: how long a refusal is remembered, the longest a new token or
                               permission may still be refused (default 2)
Flow control (multi-level limits, fair queues, 429 with a dynamic Retry-After):
  --flow-control-config FILE   YAML file with the flow-control configuration (the same as the flowControl
                               section of --config); reloaded when it changes and on SIGHUP
                               (default: built-in levels; see the README)
Other:
  --config FILE                YAML file with any of the options above in camelCase
                               (kubeconfig, context, upstreams, listen, tlsCertFile, tlsPrivateKeyFile,
                               clientCaFile, tlsMinVersion, tlsCipherSuites (list), writeKubeconfig, metricsListen, logLevel, shutdownGracePeriodSeconds,
                               cacheResources, cacheIndexedFields (lists), cachePageSize,
                               cacheBookmarkIntervalSeconds, cacheFreshnessWaitSeconds, cacheFreshnessBudgetSeconds,
                               cacheQuietAfterSeconds, cacheSnapshotTtlSeconds,
                               cacheAuthorizationTtlSeconds, cacheStaleAfterSeconds, authorizationMode,
                               authorizationAllowedTtlSeconds, authorizationDeniedTtlSeconds, flowControl,
                               upstreamDiscovery, upstreamBalance, upstreamHealthIntervalSeconds,
                               upstreamConnectionMaxAgeSeconds, forwardedWatchMaxAgeSeconds,
                               clientConnectionMaxAgeSeconds, maxAgeJitter, maxConnections,
                               maxConnectionsPerSource, requestHeaderTimeoutSeconds,
                               requestBodyTimeoutSeconds, writeStallTimeoutSeconds);
                               flags override it
  --write-kubeconfig FILE      write a kubeconfig that points a client at this proxy with the source
                               context's credentials and the proxy's CA, then keep serving
  --log-level LEVEL            ${LOG_LEVELS.join('|')} (default info)
  -h, --help                   this help
`;

/** Every flag, as node:util parseArgs takes them (HELP documents each one). */
export const FLAGS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  listen: { type: 'string' },
  'tls-cert-file': { type: 'string' },
  'tls-private-key-file': { type: 'string' },
  'client-ca-file': { type: 'string' },
  'tls-min-version': { type: 'string' },
  'tls-cipher-suites': { type: 'string' },
  config: { type: 'string' },
  'write-kubeconfig': { type: 'string' },
  'metrics-listen': { type: 'string' },
  'metrics-mode': { type: 'string' },
  'log-level': { type: 'string' },
  'shutdown-grace-period': { type: 'string' },
  'cache-resources': { type: 'string' },
  'cache-indexed-fields': { type: 'string' },
  'cache-page-size': { type: 'string' },
  'cache-bookmark-interval': { type: 'string' },
  'cache-freshness-wait': { type: 'string' },
  'cache-freshness-budget': { type: 'string' },
  'cache-quiet-after': { type: 'string' },
  'cache-snapshot-ttl': { type: 'string' },
  'cache-authorization-ttl': { type: 'string' },
  'authorization-mode': { type: 'string' },
  'authorization-allowed-ttl': { type: 'string' },
  'authorization-denied-ttl': { type: 'string' },
  'flow-control-config': { type: 'string' },
  'cache-stale-after': { type: 'string' },
  'upstream-discovery': { type: 'boolean' },
  'upstream-balance': { type: 'string' },
  'upstream-health-interval': { type: 'string' },
  'upstream-connection-max-age': { type: 'string' },
  'forwarded-watch-max-age': { type: 'string' },
  'client-connection-max-age': { type: 'string' },
  'max-age-jitter': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-connections-per-source': { type: 'string' },
  'request-header-timeout': { type: 'string' },
  'request-body-timeout': { type: 'string' },
  'write-stall-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type ParsedFlags = { help: true } | { help: false; options: ProxyOptions };

function listen(flag: string, v: string): ListenAddress {
  const l = parseListen(v);
  if (typeof l === 'string') throw new ConfigError(`${flag}: ${l}`);
  return l;
}

export function parseFlags(argv: readonly string[]): ParsedFlags {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: FLAGS,
    });
  } catch (err) {
    throw new ConfigError((err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'bad flags');
  }
  const v = parsed.values;
  if (v.help) return { help: true };
  // An empty value is a mistake (e.g. an unset variable in --tls-cert-file=$CERT), not "unset":
  // the proxy would silently fall back to a default such as a generated certificate.
  for (const [name, value] of Object.entries(v)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === '') throw new ConfigError(`--${name}: must not be empty`);
    }
  }
  const file = v.config ? loadConfigFile(v.config) : {};
  const logLevel = v['log-level'] ?? file.logLevel ?? 'info';
  if (!isLogLevel(logLevel)) throw new ConfigError(`--log-level: must be one of ${LOG_LEVELS.join(', ')}`);
  let grace = file.shutdownGracePeriodSeconds ?? 30;
  if (v['shutdown-grace-period'] !== undefined) {
    // Plain decimal seconds only: Number() would also take "", " ", "0x10" and "1e3".
    const text = v['shutdown-grace-period'];
    grace = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : NaN;
    if (!Number.isFinite(grace) || grace < 0) throw new ConfigError('--shutdown-grace-period: must be a number of seconds >= 0');
  }
  const list = (text: string | undefined) => (text === undefined ? undefined : text.split(',').map((x) => x.trim()).filter((x) => x !== ''));
  const num = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+(?:\.\d+)?$/.test(text)) throw new ConfigError(`${flag}: must be a number >= 0`);
    return Number(text);
  };
  const cache = cacheConfigFrom({
    resources: list(v['cache-resources']) ?? file.cacheResources,
    indexedFields: list(v['cache-indexed-fields']) ?? file.cacheIndexedFields,
    pageSize: num('--cache-page-size', v['cache-page-size']) ?? file.cachePageSize,
    bookmarkIntervalSeconds: num('--cache-bookmark-interval', v['cache-bookmark-interval']) ?? file.cacheBookmarkIntervalSeconds,
    freshnessWaitSeconds: num('--cache-freshness-wait', v['cache-freshness-wait']) ?? file.cacheFreshnessWaitSeconds,
    freshnessBudgetSeconds: num('--cache-freshness-budget', v['cache-freshness-budget']) ?? file.cacheFreshnessBudgetSeconds,
    quietAfterSeconds: num('--cache-quiet-after', v['cache-quiet-after']) ?? file.cacheQuietAfterSeconds,
    snapshotTtlSeconds: num('--cache-snapshot-ttl', v['cache-snapshot-ttl']) ?? file.cacheSnapshotTtlSeconds,
    authorizationTtlSeconds: num('--cache-authorization-ttl', v['cache-authorization-ttl']) ?? file.cacheAuthorizationTtlSeconds,
    staleAfterSeconds: num('--cache-stale-after', v['cache-stale-after']) ?? file.cacheStaleAfterSeconds,
    authorizationMode: v['authorization-mode'] ?? file.authorizationMode,
    authorizationAllowedTtlSeconds: num('--authorization-allowed-ttl', v['authorization-allowed-ttl']) ?? file.authorizationAllowedTtlSeconds,
    authorizationDeniedTtlSeconds: num('--authorization-denied-ttl', v['authorization-denied-ttl']) ?? file.authorizationDeniedTtlSeconds,
  });
  const metricsMode = v['metrics-mode'] ?? file.metricsMode ?? 'plain';
  if (!isMetricsMode(metricsMode)) throw new ConfigError(`--metrics-mode: must be one of ${METRICS_MODES.join(', ')}`);
  const balance = v['upstream-balance'] ?? file.upstreamBalance ?? DEFAULT_BACKEND_OPTIONS.balance;
  if (!isBalancePolicy(balance)) throw new ConfigError(`--upstream-balance: must be one of ${BALANCE_POLICIES.join(', ')}`);
  const jitter = num('--max-age-jitter', v['max-age-jitter']) ?? file.maxAgeJitter ?? DEFAULT_BACKEND_OPTIONS.maxAgeJitter;
  if (jitter > 1) throw new ConfigError('--max-age-jitter: must be a number from 0 to 1');
  const healthInterval = num('--upstream-health-interval', v['upstream-health-interval']) ?? file.upstreamHealthIntervalSeconds ?? DEFAULT_BACKEND_OPTIONS.healthIntervalSeconds;
  if (healthInterval <= 0) throw new ConfigError('--upstream-health-interval: must be a number > 0');
  const backends: BackendOptions = {
    discovery: v['upstream-discovery'] ?? file.upstreamDiscovery ?? DEFAULT_BACKEND_OPTIONS.discovery,
    balance,
    healthIntervalSeconds: healthInterval,
    connectionMaxAgeSeconds: num('--upstream-connection-max-age', v['upstream-connection-max-age']) ?? file.upstreamConnectionMaxAgeSeconds ?? DEFAULT_BACKEND_OPTIONS.connectionMaxAgeSeconds,
    forwardedWatchMaxAgeSeconds: num('--forwarded-watch-max-age', v['forwarded-watch-max-age']) ?? file.forwardedWatchMaxAgeSeconds ?? DEFAULT_BACKEND_OPTIONS.forwardedWatchMaxAgeSeconds,
    clientConnectionMaxAgeSeconds: num('--client-connection-max-age', v['client-connection-max-age']) ?? file.clientConnectionMaxAgeSeconds ?? DEFAULT_BACKEND_OPTIONS.clientConnectionMaxAgeSeconds,
    maxAgeJitter: jitter,
  };
  const whole = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) throw new ConfigError(`${flag}: must be a whole number >= 0`);
    return Number(text);
  };
  const ms = (seconds: number | undefined): number | undefined => (seconds === undefined ? undefined : seconds * 1000);
  const d = DEFAULT_CONNECTION_LIMITS;
  const connectionLimits: ConnectionLimits = {
    ...d,
    maxConnections: whole('--max-connections', v['max-connections']) ?? file.maxConnections ?? d.maxConnections,
    maxConnectionsPerSource: whole('--max-connections-per-source', v['max-connections-per-source']) ?? file.maxConnectionsPerSource ?? d.maxConnectionsPerSource,
    requestHeaderTimeoutMs: ms(num('--request-header-timeout', v['request-header-timeout']) ?? file.requestHeaderTimeoutSeconds) ?? d.requestHeaderTimeoutMs,
    requestBodyTimeoutMs: ms(num('--request-body-timeout', v['request-body-timeout']) ?? file.requestBodyTimeoutSeconds) ?? d.requestBodyTimeoutMs,
    writeStallTimeoutMs: ms(num('--write-stall-timeout', v['write-stall-timeout']) ?? file.writeStallTimeoutSeconds) ?? d.writeStallTimeoutMs,
  };
  const flowControlSource: FlowControlSource | undefined = v['flow-control-config'] !== undefined
    ? { file: v['flow-control-config'], flag: '--flow-control-config' }
    : v.config !== undefined ? { file: v.config, flag: '--config' } : undefined;
  const flowControl = flowControlSource?.flag === '--flow-control-config' ? loadFlowControlConfig(flowControlSource) : file.flowControl ?? DEFAULT_FLOW_CONTROL;
  const tlsMinVersion = v['tls-min-version'] ?? file.tlsMinVersion;
  const versionError = tlsMinVersion === undefined ? undefined : tlsVersionError(tlsMinVersion);
  if (versionError !== undefined) throw new ConfigError(`--tls-min-version: ${versionError}`);
  const tlsCipherSuites = list(v['tls-cipher-suites']) ?? file.tlsCipherSuites;
  const suitesError = tlsCipherSuites === undefined ? undefined : cipherSuitesError(tlsCipherSuites);
  if (suitesError !== undefined) throw new ConfigError(`--tls-cipher-suites: ${suitesError}`);
  const options: ProxyOptions = {
    kubeconfig: v.kubeconfig ?? file.kubeconfig,
    context: v.context ?? file.context,
    upstreams: v.upstream ?? file.upstreams ?? [],
    listen: v.listen !== undefined ? listen('--listen', v.listen) : file.listen ?? listen('--listen', DEFAULT_LISTEN),
    tlsCertFile: v['tls-cert-file'] ?? file.tlsCertFile,
    tlsPrivateKeyFile: v['tls-private-key-file'] ?? file.tlsPrivateKeyFile,
    clientCaFile: v['client-ca-file'] ?? file.clientCaFile,
    ...(tlsMinVersion !== undefined ? { tlsMinVersion: tlsMinVersion as TlsVersionName } : {}),
    ...(tlsCipherSuites !== undefined ? { tlsCipherSuites } : {}),
    writeKubeconfig: v['write-kubeconfig'] ?? file.writeKubeconfig,
    metricsListen: v['metrics-listen'] !== undefined ? listen('--metrics-listen', v['metrics-listen']) : file.metricsListen ?? listen('--metrics-listen', DEFAULT_METRICS_LISTEN),
    metricsMode,
    logLevel,
    shutdownGracePeriodSeconds: grace,
    cache,
    flowControl,
    flowControlSource,
    backends,
    connectionLimits,
  };
  if ((options.tlsCertFile === undefined) !== (options.tlsPrivateKeyFile === undefined)) {
    throw new ConfigError('--tls-cert-file and --tls-private-key-file must be given together');
  }
  return { help: false, options };
}
