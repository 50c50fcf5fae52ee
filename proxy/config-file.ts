// --config FILE: YAML (or JSON), checked field by field against the schema below; errors name the
// offending field. Keys are the flags' names in camelCase.
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { ConfigError } from './errors.js';
import { AUTHORIZATION_MODES, type AuthorizationMode } from '../cache/config.js';
import { flowControlConfigFrom } from './flow-control-source.js';
import { cipherSuitesError, tlsVersionError, type TlsVersionName } from './tls-options.js';
import { BALANCE_POLICIES, isLogLevel, isMetricsMode, parseListen, LOG_LEVELS, METRICS_MODES, type BalancePolicy, type ProxyOptions } from './options.js';

type FieldType = 'metricsMode' | 'authorizationMode' | 'string' | 'string[]' | 'listen' | 'logLevel' | 'seconds' | 'count' | 'flowControl' | 'boolean' | 'balance' | 'fraction' | 'tlsVersion' | 'cipherSuites' | 'limit';

const SCHEMA: Readonly<Record<string, FieldType>> = {
  kubeconfig: 'string',
  context: 'string',
  upstreams: 'string[]',
  listen: 'listen',
  tlsCertFile: 'string',
  tlsPrivateKeyFile: 'string',
  clientCaFile: 'string',
  tlsMinVersion: 'tlsVersion',
  tlsCipherSuites: 'cipherSuites',
  writeKubeconfig: 'string',
  metricsListen: 'listen',
  metricsMode: 'metricsMode',
  logLevel: 'logLevel',
  shutdownGracePeriodSeconds: 'seconds',
  cacheResources: 'string[]',
  cacheIndexedFields: 'string[]',
  cachePageSize: 'count',
  cacheBookmarkIntervalSeconds: 'seconds',
  cacheFreshnessWaitSeconds: 'seconds',
  cacheFreshnessBudgetSeconds: 'seconds',
  cacheQuietAfterSeconds: 'seconds',
  cacheSnapshotTtlSeconds: 'seconds',
  cacheAuthorizationTtlSeconds: 'seconds',
  authorizationMode: 'authorizationMode',
  authorizationAllowedTtlSeconds: 'seconds',
  authorizationDeniedTtlSeconds: 'seconds',
  flowControl: 'flowControl',
  cacheStaleAfterSeconds: 'seconds',
  upstreamDiscovery: 'boolean',
  upstreamBalance: 'balance',
  upstreamHealthIntervalSeconds: 'seconds',
  upstreamConnectionMaxAgeSeconds: 'seconds',
  forwardedWatchMaxAgeSeconds: 'seconds',
  clientConnectionMaxAgeSeconds: 'seconds',
  maxAgeJitter: 'fraction',
  maxConnections: 'limit',
  maxConnectionsPerSource: 'limit',
  requestHeaderTimeoutSeconds: 'seconds',
  requestBodyTimeoutSeconds: 'seconds',
  writeStallTimeoutSeconds: 'seconds',
};

export type ConfigFileOptions = Partial<{ -readonly [K in Exclude<keyof ProxyOptions, 'cache' | 'flowControlSource' | 'backends' | 'connectionLimits'>]: ProxyOptions[K] }> & {
  cacheStaleAfterSeconds?: number;
  upstreamDiscovery?: boolean;
  upstreamBalance?: BalancePolicy;
  upstreamHealthIntervalSeconds?: number;
  upstreamConnectionMaxAgeSeconds?: number;
  forwardedWatchMaxAgeSeconds?: number;
  clientConnectionMaxAgeSeconds?: number;
  maxAgeJitter?: number;
  maxConnections?: number;
  maxConnectionsPerSource?: number;
  requestHeaderTimeoutSeconds?: number;
  requestBodyTimeoutSeconds?: number;
  writeStallTimeoutSeconds?: number;
  cacheResources?: string[];
  cacheIndexedFields?: string[];
  cachePageSize?: number;
  cacheBookmarkIntervalSeconds?: number;
  cacheFreshnessWaitSeconds?: number;
  cacheFreshnessBudgetSeconds?: number;
  cacheQuietAfterSeconds?: number;
  cacheSnapshotTtlSeconds?: number;
  cacheAuthorizationTtlSeconds?: number;
  authorizationMode?: AuthorizationMode;
  authorizationAllowedTtlSeconds?: number;
  authorizationDeniedTtlSeconds?: number;
};

function check(file: string, key: string, type: FieldType, v: unknown): ConfigFileOptions[keyof ConfigFileOptions] {
  const fail = (what: string): never => {
    throw new ConfigError(`--config ${file}: field "${key}" ${what}`);
  };
  switch (type) {
    case 'string':
      return typeof v === 'string' && v !== '' ? v : fail('must be a non-empty string');
    case 'string[]':
      if (!Array.isArray(v)) return fail('must be a list of strings');
      return v.map((x: unknown, i) => (typeof x === 'string' && x !== '' ? x : fail(`item ${i} must be a non-empty string`)));
    case 'listen': {
      if (typeof v !== 'string') return fail('must be a string like ":8443"');
      const l = parseListen(v);
      return typeof l === 'string' ? fail(l) : l;
    }
    case 'logLevel':
      return typeof v === 'string' && isLogLevel(v) ? v : fail(`must be one of ${LOG_LEVELS.join(', ')}`);
    case 'seconds':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fail('must be a number of seconds >= 0');
    case 'count':
      return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : fail('must be a whole number >= 1');
    case 'limit':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fail('must be a whole number >= 0 (0: no limit)');
    case 'boolean':
      return typeof v === 'boolean' ? v : fail('must be true or false');
    case 'balance':
      return typeof v === 'string' && (BALANCE_POLICIES as readonly string[]).includes(v) ? v as BalancePolicy : fail(`must be one of ${BALANCE_POLICIES.join(', ')}`);
    case 'authorizationMode':
      return typeof v === 'string' && (AUTHORIZATION_MODES as readonly string[]).includes(v) ? v as AuthorizationMode : fail(`must be one of ${AUTHORIZATION_MODES.join(', ')}`);
    case 'metricsMode':
      return typeof v === 'string' && isMetricsMode(v) ? v : fail(`must be one of ${METRICS_MODES.join(', ')}`);
    case 'fraction':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1 ? v : fail('must be a number from 0 to 1');
    case 'flowControl':
      return flowControlConfigFrom(v, { file, flag: '--config' });
    case 'tlsVersion': {
      if (typeof v !== 'string') return fail('must be a string like VersionTLS12');
      const err = tlsVersionError(v);
      return err === undefined ? v as TlsVersionName : fail(err);
    }
    case 'cipherSuites': {
      if (!Array.isArray(v) || !v.every((x: unknown) => typeof x === 'string')) return fail('must be a list of cipher suite names');
      const names = v as string[];
      const err = cipherSuitesError(names);
      return err === undefined ? names : fail(err);
    }
  }
}

export function parseConfigText(file: string, text: string): ConfigFileOptions {
  let doc: unknown;
  try {
    // js-yaml itself, not client-node's loadYaml: that one refuses empty documents and runs the result
    // through the Kubernetes object serializer (a file with apiVersion/kind lost its other fields).
    // The core schema keeps dates and the like as the strings they look like.
    doc = yaml.load(text, { schema: yaml.CORE_SCHEMA, filename: file });
  } catch (err) {
    throw new ConfigError(`--config ${file}: not valid YAML: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--config ${file}: must be a mapping of fields`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    // Own keys only: "constructor", "toString" or "__proto__" must be unknown fields, not Object.prototype's.
    const type = Object.hasOwn(SCHEMA, key) ? SCHEMA[key] : undefined;
    if (!type) throw new ConfigError(`--config ${file}: unknown field "${key}" (known: ${Object.keys(SCHEMA).join(', ')})`);
    out[key] = check(file, key, type, value);
  }
  return out as ConfigFileOptions;
}

export function loadConfigFile(file: string): ConfigFileOptions {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseConfigText(file, text);
}
