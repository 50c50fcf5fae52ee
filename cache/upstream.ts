// How the cache reaches the apiservers: an interface the composition root (proxy/) implements
// with the same backends, balancing and credentials it uses for client traffic.
import type { Readable } from 'node:stream';

export interface UpstreamReply {
  readonly statusCode: number;
  readonly body: Readable;
}

export interface CacheUpstream {
  /** GET `path` (with query) with the proxy's own credentials, asking for JSON. */
  get(path: string, signal: AbortSignal): Promise<UpstreamReply>;
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
