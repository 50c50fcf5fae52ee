// A client's request and response, over HTTP/1.1 (node:http's classes) or HTTP/2 (node:http2's
// compatibility classes, subclassed here with what the request handlers use of node:http's and the
// HTTP/2 ones lack). The handlers are written against the union; the server creates the subclasses
// (createSecureServer's Http2ServerRequest/Http2ServerResponse options).
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';

export class Http2ClientRequest extends Http2ServerRequest {
  #distinct: Record<string, string[]> | undefined;

  /** As IncomingMessage.headersDistinct: every header (pseudo-headers left out) as a list of its values. */
  get headersDistinct(): Record<string, string[]> {
    if (this.#distinct) return this.#distinct;
    const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
    const raw = this.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] ?? '').toLowerCase();
      if (name.startsWith(':')) continue;
      (out[name] ??= []).push(raw[i + 1] ?? '');
    }
    this.#distinct = out;
    return out;
  }

  /**
   * HTTP/2 frames the body itself (a body need not have a Content-Length): there is one unless the
   * HEADERS frame ended the stream.
   */
  get hasBody(): boolean {
    return !this.stream.endAfterHeaders;
  }
}

// Node's compatibility response has it (it sends the HEADERS frame); its type leaves it out.
export interface Http2ClientResponse {
  flushHeaders(): void;
}

export class Http2ClientResponse extends Http2ServerResponse {
  /**
   * Set by handlers that want the HTTP/1.1 connection closed after the response; an HTTP/2
   * connection is never closed for one stream, so it only records the wish.
   */
  shouldKeepAlive = true;
}

// node:http2's compatibility response is a legacy Stream without Writable's `destroyed` and
// `closed` (its type says otherwise): its HTTP/2 stream's state stands in.
for (const name of ['destroyed', 'closed'] as const) {
  Object.defineProperty(Http2ClientResponse.prototype, name, {
    configurable: true,
    get(this: Http2ClientResponse): boolean {
      return this.stream[name];
    },
  });
}

export type ClientRequest = IncomingMessage | Http2ClientRequest;

/**
 * What the handlers use of a response, which both node:http's ServerResponse and Http2ClientResponse
 * are (one interface rather than their union: TypeScript cannot call a union of overloaded methods).
 */
export interface ClientResponse extends NodeJS.WritableStream {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly closed: boolean;
  readonly writableEnded: boolean;
  /** HTTP/1.1: false closes the connection after this response (`Connection: close`); HTTP/2: ignored. */
  shouldKeepAlive: boolean;
  readonly socket: Socket | null;
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this;
  flushHeaders(): void;
  destroy(error?: Error): this;
}

export function isHttp2(req: ClientRequest): req is Http2ClientRequest {
  return req instanceof Http2ClientRequest;
}

/** True when the request carries a body to pass on. */
export function requestHasBody(req: ClientRequest): boolean {
  if (isHttp2(req)) return req.hasBody;
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}
