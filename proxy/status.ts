// Kubernetes Status bodies for the errors the proxy itself answers, in kube-apiserver's key order
// (kind, apiVersion, metadata, status, message, reason, details, code).
import { STATUS_CODES } from 'node:http';
import type { ClientResponse } from './client-http.js';

export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly retryAfterSeconds?: number;
}

export function statusBody(code: number, reason: string, message: string, details?: StatusDetails): string {
  const body: Record<string, unknown> = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
  };
  if (details && Object.keys(details).length > 0) body['details'] = details;
  body['code'] = code;
  return JSON.stringify(body) + '\n';
}

/** Writes a Status response (unless headers already went out, in which case the response is cut). */
export function sendStatus(res: ClientResponse, code: number, reason: string, message: string, details?: StatusDetails): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = statusBody(code, reason, message, details);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-cache, private',
  };
  if (details?.retryAfterSeconds) headers['retry-after'] = details.retryAfterSeconds;
  if (code === 403) headers['x-content-type-options'] = 'nosniff';
  res.writeHead(code, headers);
  res.end(body);
}

/** The same Status as a raw HTTP/1.1 response, for sockets taken over by an upgrade. */
export function rawStatusResponse(code: number, reason: string, message: string, details?: StatusDetails): string {
  const body = statusBody(code, reason, message, details);
  const statusText = STATUS_CODES[code] ?? 'Error';
  const retry = details?.retryAfterSeconds ? `Retry-After: ${details.retryAfterSeconds}\r\n` : '';
  return `HTTP/1.1 ${code} ${statusText}\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n${retry}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
