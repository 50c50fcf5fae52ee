// The proxy command's logger (proxy/log-redaction.ts): header and credential fields redacted, error
// texts without bearer credentials, PEM blocks or the input JSON.parse quotes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { LOG_SAFETY, scrubErrorText } from '../../proxy/log-redaction.js';
import { parseJsonWithheld, withheldJsonError } from '../../cache/json-error.js';
import { storedObject, ObjectParseError } from '../../cache/stored-object.js';
import { fieldSetFor } from '../../indexes/selectable-fields.js';

const SECRET = 'c2VjcmV0LXZhbHVlLWhlcmUtbG9uZw';
const TOKEN = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.payload-of-the-token.signature-of-it';
const PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yRxJ9Wb8m2y0qGKfOAt1k+AbcdeoAoGCCqGSM49\n-----END EC PRIVATE KEY-----';

function logged(write: (log: pino.Logger) => void): string {
  let out = '';
  const log = pino({ level: 'trace', ...LOG_SAFETY }, { write: (s: string) => { out += s; } });
  write(log);
  return out;
}

test('JSON.parse errors keep the position, never the input', () => {
  let native = '';
  try {
    JSON.parse(`{"data":{"value":${SECRET}}}`);
  } catch (err) {
    native = String(err);
  }
  assert.ok(native.includes(SECRET.slice(0, 8)), `V8 quotes the input (${native}): the reason for all this`);
  assert.throws(() => parseJsonWithheld(`{"data":{"value":${SECRET}}}`), (err: Error) => err instanceof SyntaxError && !err.message.includes(SECRET.slice(0, 4)));
  assert.equal(withheldJsonError(new SyntaxError('Unexpected end of JSON input at position 12 (line 1 column 13)')), 'invalid JSON at position 12');
  assert.throws(() => storedObject(Buffer.from(`{"metadata":{"name":"s"},"data":{"value":${SECRET}}}`), fieldSetFor('', 'secrets', true), true),
    (err: Error) => err instanceof ObjectParseError && !err.message.includes(SECRET.slice(0, 4)));
});

test('error texts lose bearer credentials, PEM blocks and quoted JSON input', () => {
  const text = scrubErrorText(`request failed: Authorization: Bearer ${TOKEN}; key ${PEM}; SyntaxError: Unexpected token 'c', ..."{"value":${SECRET.slice(0, 10)}"... is not valid JSON`);
  assert.ok(!text.includes(TOKEN.slice(0, 20)), text);
  assert.ok(!text.includes('MHcCAQEE'), text);
  assert.ok(!text.includes(SECRET.slice(0, 10)), text);
  assert.match(text, /Bearer \[withheld\]/);
});

test('the logger redacts header and credential fields and scrubs err, as strings or errors', () => {
  const out = logged((log) => {
    log.info({ req: { headers: { authorization: `Bearer ${TOKEN}`, 'user-agent': 'kubectl' } } }, 'a');
    log.info({ headers: { authorization: `Bearer ${TOKEN}`, cookie: 'session=abc123456789' } }, 'b');
    log.info({ token: TOKEN, user: { token: TOKEN, password: 'hunter2-hunter2', key: PEM } }, 'c');
    log.warn({ err: `upstream said: Bearer ${TOKEN}` }, 'd');
    log.error({ err: new Error(`tls: ${PEM}`) }, 'e');
  });
  for (const s of [TOKEN.slice(0, 20), 'abc123456789', 'hunter2', 'MHcCAQEE']) assert.ok(!out.includes(s), `${s} in ${out}`);
  assert.match(out, /"user-agent":"kubectl"/, 'other fields stay');
  assert.equal(out.split('\n').filter((l) => l !== '').length, 5);
});
