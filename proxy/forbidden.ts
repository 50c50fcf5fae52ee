// The apiserver's own refusals, for reads the proxy refuses itself in `local` authorization mode:
// 401 when authentication fails, 403 with the text kube-apiserver writes when authorization does
// (k8s.io/apiserver endpoints/handlers/responsewriters Forbidden and forbiddenMessage, and
// apimachinery's NewForbidden), encoded as its JSON serializer encodes a Status.
import { randomUUID } from 'node:crypto';
import type { ClientResponse } from './client-http.js';

export interface ForbiddenAttributes {
  readonly user: string;
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource: string;
  readonly namespace: string;
  readonly name: string;
}

/** Go's strconv.Quote for the text that reaches these messages (printable Unicode is kept). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0x80 && c < 0xa0) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** The apiserver's "Avoid emitting errors that look like valid HTML" replacer. */
export const sanitize = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** forbiddenMessage of kube-apiserver, for resource requests. */
export function forbiddenMessage(a: ForbiddenAttributes): string {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const head = `User ${goQuote(a.user)} cannot ${a.verb} resource ${goQuote(resource)} in API group ${goQuote(a.group)}`;
  return a.namespace ? `${head} in the namespace ${goQuote(a.namespace)}` : `${head} at the cluster scope`;
}

/** The Status message of the 403: NewForbidden(group resource, name, message[: reason]). */
export function forbiddenStatusMessage(a: ForbiddenAttributes, reason: string): string {
  const msg = sanitize(forbiddenMessage(a)) + (reason ? `: ${reason}` : '');
  const gr = a.group ? `${a.resource}.${a.group}` : a.resource;
  return a.name ? `${gr} ${goQuote(a.name)} is forbidden: ${msg}` : `${gr} is forbidden: ${msg}`;
}

/**
 * JSON as Go's encoding/json writes it (HTML-safe: <, >, & and the line separators escaped), with
 * the trailing newline of its Encoder.
 */
export function goJson(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`) + '\n';
}

export function forbiddenBody(a: ForbiddenAttributes, reason: string): string {
  const details: Record<string, string> = {};
  if (a.name) details['name'] = a.name;
  if (a.group) details['group'] = a.group;
  details['kind'] = a.resource;
  return goJson({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: forbiddenStatusMessage(a, reason), reason: 'Forbidden', details, code: 403 });
}

export const UNAUTHORIZED_BODY = goJson({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });

/** Writes the refusal with the apiserver's headers. Returns the body's length. */
export function writeRefusal(res: ClientResponse, code: 401 | 403, body: string): number {
  const headers: Record<string, string> = { 'audit-id': randomUUID(), 'cache-control': 'no-cache, private', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  if (code === 403) headers['x-content-type-options'] = 'nosniff';
  res.writeHead(code, headers);
  res.end(body);
  return Buffer.byteLength(body);
}
