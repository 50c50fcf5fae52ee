// The cache's options from flags and the config file (see --help), with errors naming the flag.
import { ConfigError } from './errors.js';
import { AUTHORIZATION_MODES, DEFAULT_AUTHORIZATION_CONFIG, DEFAULT_CACHE_CONFIG, DEFAULT_CACHED_RESOURCES, parseResourceSpec, type CacheConfig, type CachedResourceConfig } from '../cache/config.js';
import { resourceName } from '../cache/resource-type.js';

export interface RawCacheOptions {
  readonly resources?: readonly string[] | undefined;
  readonly indexedFields?: readonly string[] | undefined;
  readonly pageSize?: number | undefined;
  readonly bookmarkIntervalSeconds?: number | undefined;
  readonly freshnessWaitSeconds?: number | undefined;
  readonly freshnessBudgetSeconds?: number | undefined;
  readonly quietAfterSeconds?: number | undefined;
  readonly snapshotTtlSeconds?: number | undefined;
  readonly authorizationTtlSeconds?: number | undefined;
  readonly staleAfterSeconds?: number | undefined;
  readonly authorizationMode?: string | undefined;
  readonly authorizationAllowedTtlSeconds?: number | undefined;
  readonly authorizationDeniedTtlSeconds?: number | undefined;
}

/** The cache configuration, or undefined when caching is off (`--cache-resources none`). */
export function cacheConfigFrom(raw: RawCacheOptions): CacheConfig | undefined {
  let resources: CachedResourceConfig[] = DEFAULT_CACHED_RESOURCES.map((r) => ({ ...r, indexedFields: [] }));
  if (raw.resources !== undefined) {
    if (raw.resources.length === 1 && raw.resources[0] === 'none') return undefined;
    resources = raw.resources.map((spec) => {
      const r = parseResourceSpec(spec);
      if (typeof r === 'string') throw new ConfigError(`--cache-resources: ${r}`);
      return { ...r, indexedFields: [] };
    });
  }
  const indexed = raw.indexedFields ?? ['pods=spec.nodeName'];
  const fields = new Map<string, string[]>();
  for (const pair of indexed) {
    const m = /^([^=\s]+)=([^=\s]+)$/.exec(pair);
    if (!m) throw new ConfigError(`--cache-indexed-fields: not resource=field: "${pair}"`);
    const r = parseResourceSpec(m[1] as string);
    if (typeof r === 'string') throw new ConfigError(`--cache-indexed-fields: ${r}`);
    const name = resourceName(r);
    if (!resources.some((x) => resourceName(x) === name)) {
      // The default index (pods by node) applies only when pods are cached: --cache-resources
      // without pods is not a mistake; an explicit index of an uncached resource is.
      if (raw.indexedFields === undefined) continue;
      throw new ConfigError(`--cache-indexed-fields: ${name} is not a cached resource`);
    }
    fields.set(name, [...(fields.get(name) ?? []), m[2] as string]);
  }
  resources = resources.map((r) => ({ ...r, indexedFields: fields.get(resourceName(r)) ?? [] }));
  const positive = (flag: string, v: number | undefined, def: number, integer: boolean): number => {
    if (v === undefined) return def;
    if (!Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) throw new ConfigError(`${flag}: must be a ${integer ? 'whole ' : ''}number >= 0`);
    return v;
  };
  const pageSize = positive('--cache-page-size', raw.pageSize, DEFAULT_CACHE_CONFIG.pageSize, true);
  if (pageSize < 1) throw new ConfigError('--cache-page-size: must be at least 1');
  const mode = raw.authorizationMode ?? DEFAULT_AUTHORIZATION_CONFIG.mode;
  if (mode !== 'probe' && mode !== 'local') throw new ConfigError(`--authorization-mode: must be one of ${AUTHORIZATION_MODES.join(', ')}`);
  return {
    resources,
    pageSize,
    bookmarkIntervalSeconds: positive('--cache-bookmark-interval', raw.bookmarkIntervalSeconds, DEFAULT_CACHE_CONFIG.bookmarkIntervalSeconds, false),
    freshnessBudgetMs: positive('--cache-freshness-wait', raw.freshnessWaitSeconds, DEFAULT_CACHE_CONFIG.freshnessBudgetMs / 1000, false) * 1000,
    readFreshness: {
      budgetMs: positive('--cache-freshness-budget', raw.freshnessBudgetSeconds, DEFAULT_CACHE_CONFIG.readFreshness.budgetMs / 1000, false) * 1000,
      quietAfterMs: positive('--cache-quiet-after', raw.quietAfterSeconds, DEFAULT_CACHE_CONFIG.readFreshness.quietAfterMs / 1000, false) * 1000,
    },
    snapshots: { ...DEFAULT_CACHE_CONFIG.snapshots, ttlSeconds: positive('--cache-snapshot-ttl', raw.snapshotTtlSeconds, DEFAULT_CACHE_CONFIG.snapshots.ttlSeconds, false) },
    watch: DEFAULT_CACHE_CONFIG.watch,
    staleAfterMs: positive('--cache-stale-after', raw.staleAfterSeconds, DEFAULT_CACHE_CONFIG.staleAfterMs / 1000, false) * 1000,
    authorizationTtlSeconds: positive('--cache-authorization-ttl', raw.authorizationTtlSeconds, DEFAULT_CACHE_CONFIG.authorizationTtlSeconds, false),
    authorization: {
      mode,
      allowedTtlSeconds: positive('--authorization-allowed-ttl', raw.authorizationAllowedTtlSeconds, DEFAULT_AUTHORIZATION_CONFIG.allowedTtlSeconds, false),
      deniedTtlSeconds: positive('--authorization-denied-ttl', raw.authorizationDeniedTtlSeconds, DEFAULT_AUTHORIZATION_CONFIG.deniedTtlSeconds, false),
    },
  };
}
