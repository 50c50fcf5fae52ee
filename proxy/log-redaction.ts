// What the proxy's logger never writes, whatever a log call is handed. The log calls themselves pass
// only chosen fields (method, path without the query string, status, resource, an error's text);
// these are the second line of defence, for an error text or an object that carries more than meant:
// - `redact`: header and credential fields, at the top level and one level down (e.g. a request's
//   `headers.authorization`), are written as "[Redacted]".
// - the `err` serializer: an error's text loses bearer credentials, PEM blocks (certificates, keys)
//   and the input JSON.parse quotes around a fault (which may be a Secret's data).
import type { LoggerOptions } from 'pino';
import { withheldJsonError } from '../cache/json-error.js';

const LOG_REDACT_PATHS: readonly string[] = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]',
  'headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]',
  '*.headers.authorization', '*.headers.cookie',
  'authorization', '*.authorization', 'token', '*.token', 'bearerToken', '*.bearerToken',
  'password', '*.password', 'key', '*.key', 'clientKey', '*.clientKey',
];

/** An error's text, with credentials, key material and quoted JSON input withheld. */
export function scrubErrorText(text: string): string {
  return text
    .replace(/-----BEGIN [^-]*-----[\s\S]*?(?:-----END [^-]*-----|$)/g, '[PEM withheld]')
    .replace(/\b(Bearer|Basic)\s+[^\s"',;]+/gi, '$1 [withheld]')
    .replace(/(?:Unexpected token|Unexpected non-whitespace).*?is not valid JSON/gs, (m) => withheldJsonError(new Error(m)));
}

function serializeErr(v: unknown): unknown {
  if (typeof v === 'string') return scrubErrorText(v);
  if (v instanceof Error) return scrubErrorText(String(v));
  return v;
}

/** The pino options every logger of the proxy's command takes. */
export const LOG_SAFETY: Pick<LoggerOptions, 'redact' | 'serializers'> = {
  redact: [...LOG_REDACT_PATHS],
  serializers: { err: serializeErr },
};
