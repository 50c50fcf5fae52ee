// How the cache reaches the apiservers: an interface the composition root (proxy/) implements
// with the same backends, balancing and credentials it uses for client traffic.
import type { Readable } from 'node:stream';

export interface UpstreamReply {
  readonly statusCode: number;
  readonly body: Readable;
  /** Which apiserver answered (its origin, e.g. "https://127.0.0.2:6443"). */
  readonly backend: string;
}

export interface UpstreamGetOptions {
  /** Apiservers (origins) not to use while another healthy one is available: one a watch just lost, one that answered 410. */
  readonly avoid?: ReadonlySet<string> | undefined;
  /** A watch: balanced apart from short requests. */
  readonly longRunning?: boolean | undefined;
}

export interface CacheUpstream {
  /**
   * GET `path` (with query) with the proxy's own credentials, asking for JSON, from the apiserver
   * the balancer picks. Rejects when no apiserver can be reached (connection errors are retried on
   * another one first, within a bound).
   */
  get(path: string, signal: AbortSignal, options?: UpstreamGetOptions): Promise<UpstreamReply>;
  /** The apiservers currently usable (healthy), by origin. */
  healthyBackends(): readonly string[];
}

/** The usable apiservers, or none known (an upstream that cannot say: 410s then relist at once). */
export function healthyBackendsOf(upstream: CacheUpstream): readonly string[] {
  try {
    return typeof upstream.healthyBackends === 'function' ? upstream.healthyBackends() : [];
  } catch {
    return [];
  }
}

export async function readBody(body: Readable, limit = Infinity): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw new Error(`response larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, n);
}

/** A non-200 answer from the apiserver, with its Status reason when there is one. */
export class UpstreamStatusError extends Error {
  override readonly name = 'UpstreamStatusError';
  readonly statusCode: number;
  readonly reason: string;
  constructor(statusCode: number, reason: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.reason = reason;
  }

  /** 410 Gone / reason Expired: the resourceVersion is too old, relist. */
  get expired(): boolean {
    return this.statusCode === 410 || this.reason === 'Expired' || this.reason === 'Gone';
  }

  static fromStatus(statusCode: number, body: Buffer): UpstreamStatusError {
    let reason = '';
    let message = body.toString('utf8', 0, Math.min(body.length, 512));
    try {
      const s: unknown = JSON.parse(body.toString('utf8'));
      if (typeof s === 'object' && s !== null) {
        if ('reason' in s && typeof s.reason === 'string') reason = s.reason;
        if ('message' in s && typeof s.message === 'string') message = s.message;
        if ('code' in s && typeof s.code === 'number') statusCode = s.code;
      }
    } catch {
      // not a Status
    }
    return new UpstreamStatusError(statusCode, reason, message);
  }
}
