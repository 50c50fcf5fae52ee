// What the request handlers share.
import type { Logger } from 'pino';
import type { UpstreamSet } from './upstream.js';
import type { ProxyMetrics } from './metrics.js';
import type { InflightTracker } from './inflight.js';
import type { ResourceCache } from '../cache/resource-cache.js';
import type { AuthorizationCache } from './authorization-cache.js';
import type { LocalAccess } from './local-access.js';
import type { FlowControl } from '../flowcontrol/flow-control.js';

export interface ProxyContext {
  readonly upstreams: UpstreamSet;
  /** A client CA is configured: verified client certificates are forwarded by impersonation. */
  readonly clientCerts: boolean;
  readonly log: Logger;
  readonly metrics: ProxyMetrics;
  readonly inflight: InflightTracker;
  /** The watch-fed cache, when enabled. */
  readonly cache?: ResourceCache | undefined;
  /** Remembered authorizations for resourceVersion=0 reads (off unless --cache-authorization-ttl). */
  readonly authorization: AuthorizationCache;
  /** `--authorization-mode local`: reviews by the proxy instead of probes; undefined in probe mode. */
  readonly localAccess?: LocalAccess | undefined;
  /** Admission with multi-level limits and the dynamic Retry-After; undefined: none. */
  readonly flowControl?: FlowControl | undefined;
  /** Ending forwarded watches after a maximum age, so that clients re-watch where it is best now. */
  readonly reshuffle?: Reshuffle | undefined;
}

export interface Reshuffle {
  /** This watch's age limit in milliseconds (drawn with jitter; 0: none). */
  forwardedWatchMaxAgeMs(): number;
  recycled(reason: 'forwarded_watch_max_age'): void;
}
