// --config FILE: YAML or JSON, every field checked, errors naming the field.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, parseConfigText, type ConfigFileOptions } from '../../proxy/config-file.js';
import { ConfigError } from '../../proxy/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'kcp-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const FULL: ConfigFileOptions = {
  kubeconfig: '/etc/kcp/kubeconfig',
  context: 'prod',
  upstreams: ['https://10.0.0.1:6443', 'https://10.0.0.2:6443'],
  listen: { host: '0.0.0.0', port: 8443 },
  tlsCertFile: '/etc/kcp/tls.crt',
  tlsPrivateKeyFile: '/etc/kcp/tls.key',
  clientCaFile: '/etc/kcp/ca.crt',
  writeKubeconfig: '/tmp/proxy.kubeconfig',
  metricsListen: { host: '::1', port: 9443 },
  logLevel: 'debug',
  shutdownGracePeriodSeconds: 12.5,
};

const FULL_YAML = `# kube-cache-proxy
kubeconfig: /etc/kcp/kubeconfig
context: prod
upstreams:
  - https://10.0.0.1:6443
  - https://10.0.0.2:6443
listen: ":8443"
tlsCertFile: /etc/kcp/tls.crt
tlsPrivateKeyFile: /etc/kcp/tls.key
clientCaFile: /etc/kcp/ca.crt
writeKubeconfig: /tmp/proxy.kubeconfig
metricsListen: "[::1]:9443"
logLevel: debug
shutdownGracePeriodSeconds: 12.5
`;

function fails(text: string, msg: RegExp, name = 'kcp.yaml'): void {
  assert.throws(() => parseConfigText(name, text), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    assert.match(err.message, msg);
    assert.ok(err.message.startsWith(`--config ${name}: `), err.message);
    assert.doesNotMatch(err.message, /\n/, 'the message is one line');
    return true;
  }, JSON.stringify(text));
}

test('valid YAML: every field', () => {
  assert.deepEqual(parseConfigText('kcp.yaml', FULL_YAML), FULL);
});

test('valid JSON: every field', () => {
  const json = JSON.stringify({
    kubeconfig: '/etc/kcp/kubeconfig', context: 'prod', upstreams: ['https://10.0.0.1:6443', 'https://10.0.0.2:6443'],
    listen: ':8443', tlsCertFile: '/etc/kcp/tls.crt', tlsPrivateKeyFile: '/etc/kcp/tls.key', clientCaFile: '/etc/kcp/ca.crt',
    writeKubeconfig: '/tmp/proxy.kubeconfig', metricsListen: '[::1]:9443', logLevel: 'debug', shutdownGracePeriodSeconds: 12.5,
  }, null, 2);
  assert.deepEqual(parseConfigText('kcp.json', json), FULL);
});

test('partial files: only the fields given', () => {
  const cases: Array<[string, ConfigFileOptions]> = [
    ['listen: "127.0.0.1:1"\n', { listen: { host: '127.0.0.1', port: 1 } }],
    ['upstreams: []\n', { upstreams: [] }],
    ['metricsMode: tls-authn\n', { metricsMode: 'tls-authn' }],
    ['{"logLevel": "silent"}', { logLevel: 'silent' }],
    ['shutdownGracePeriodSeconds: 0\n', { shutdownGracePeriodSeconds: 0 }],
    ['---\ncontext: a\n', { context: 'a' }],
    // Core schema: what looks like a date or an octal number stays the string it is.
    ['context: 2024-01-01\n', { context: '2024-01-01' }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseConfigText('f', text), want, text);
});

test('empty files: no options', () => {
  for (const text of ['', '\n', '   \n\n', '# only a comment\n', '---\n', '~\n', 'null\n']) {
    assert.deepEqual(parseConfigText('f', text), {}, JSON.stringify(text));
  }
});

test('not a mapping', () => {
  for (const text of ['[]', '- listen: ":1"\n', '"listen"', '42', 'true', 'just a string']) {
    fails(text, /: must be a mapping of fields$/);
  }
});

test('invalid YAML', () => {
  const cases = [
    'listen: ":1"\n  bad: indentation\n',
    'listen: [":1"\n',
    'a: b: c\n',
    'listen: ":1"\nlisten: ":2"\n', // duplicate key
    '---\nlisten: ":1"\n---\nlisten: ":2"\n', // two documents
    '{"listen": ":1"',
    '\t- tab\n',
  ];
  for (const text of cases) fails(text, /: not valid YAML: /);
});

test('unknown fields, including Object.prototype names and flag spellings', () => {
  const cases: Array<[string, string]> = [
    ['listenAddress: ":1"\n', 'listenAddress'],
    ['tls-cert-file: /c\n', 'tls-cert-file'],
    ['upstream: https://a\n', 'upstream'],
    ['Listen: ":1"\n', 'Listen'],
    ['constructor: 1\n', 'constructor'],
    ['toString: x\n', 'toString'],
    ['hasOwnProperty: x\n', 'hasOwnProperty'],
    ['__proto__: {logLevel: debug}\n', '__proto__'],
    ['listen: ":1"\nextra: 1\n', 'extra'],
    // apiVersion/kind are unknown fields like any other (not a hint to a Kubernetes object serializer).
    ['apiVersion: v1\nkind: Pod\nlisten: ":1"\n', 'apiVersion'],
  ];
  for (const [text, field] of cases) {
    fails(text, new RegExp(`unknown field "${field.replace(/[_$]/g, '\\$&')}" \\(known: kubeconfig, context, upstreams, listen, `));
  }
});

test('wrong types and values: the message names the field', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['kubeconfig: 1', 'kubeconfig', /must be a non-empty string/],
    ['kubeconfig: ""', 'kubeconfig', /must be a non-empty string/],
    ['kubeconfig: null', 'kubeconfig', /must be a non-empty string/],
    ['kubeconfig: [a]', 'kubeconfig', /must be a non-empty string/],
    ['context: true', 'context', /must be a non-empty string/],
    ['context: {a: b}', 'context', /must be a non-empty string/],
    ['upstreams: https://a:6443', 'upstreams', /must be a list of strings/],
    ['upstreams: {a: b}', 'upstreams', /must be a list of strings/],
    ['upstreams: [https://a, 1]', 'upstreams', /item 1 must be a non-empty string/],
    ['upstreams: [""]', 'upstreams', /item 0 must be a non-empty string/],
    ['listen: 8443', 'listen', /must be a string like ":8443"/],
    ['listen: nope', 'listen', /must be host:port, :port or \[ipv6\]:port, got "nope"/],
    ['listen: ":70000"', 'listen', /port out of range/],
    ['tlsCertFile: 1', 'tlsCertFile', /must be a non-empty string/],
    ['tlsPrivateKeyFile: []', 'tlsPrivateKeyFile', /must be a non-empty string/],
    ['clientCaFile: false', 'clientCaFile', /must be a non-empty string/],
    ['writeKubeconfig: 0', 'writeKubeconfig', /must be a non-empty string/],
    ['metricsListen: [":1"]', 'metricsListen', /must be a string like ":8443"/],
    ['metricsListen: "::1:9443"', 'metricsListen', /must be host:port/],
    ['metricsMode: https', 'metricsMode', /must be one of plain, tls, tls-authn/],
    ['metricsMode: true', 'metricsMode', /must be one of/],
    ['logLevel: verbose', 'logLevel', /must be one of trace, debug, info, warn, error, fatal, silent/],
    ['logLevel: 30', 'logLevel', /must be one of/],
    ['shutdownGracePeriodSeconds: "30"', 'shutdownGracePeriodSeconds', /must be a number of seconds >= 0/],
    ['shutdownGracePeriodSeconds: 30s', 'shutdownGracePeriodSeconds', /must be a number of seconds >= 0/],
    ['shutdownGracePeriodSeconds: -1', 'shutdownGracePeriodSeconds', /must be a number of seconds >= 0/],
    ['shutdownGracePeriodSeconds: .inf', 'shutdownGracePeriodSeconds', /must be a number of seconds >= 0/],
    ['shutdownGracePeriodSeconds: .nan', 'shutdownGracePeriodSeconds', /must be a number of seconds >= 0/],
    ['shutdownGracePeriodSeconds: null', 'shutdownGracePeriodSeconds', /must be a number of seconds >= 0/],
    ['authorizationMode: webhook', 'authorizationMode', /must be one of probe, local/],
    ['authorizationMode: 1', 'authorizationMode', /must be one of probe, local/],
    ['authorizationAllowedTtlSeconds: -1', 'authorizationAllowedTtlSeconds', /must be a number of seconds >= 0/],
    ['authorizationDeniedTtlSeconds: 2s', 'authorizationDeniedTtlSeconds', /must be a number of seconds >= 0/],
  ];
  for (const [text, field, msg] of cases) fails(`${text}\n`, new RegExp(`field "${field}" ${msg.source}`));
  // JSON too.
  fails('{"listen": 8443}', /field "listen" must be a string like ":8443"/);
});

test('loadConfigFile reads the file; a missing or unreadable one names it', () => {
  const p = join(dir, 'kcp.yaml');
  writeFileSync(p, FULL_YAML);
  assert.deepEqual(loadConfigFile(p), FULL);
  const missing = join(dir, 'missing.yaml');
  assert.throws(() => loadConfigFile(missing), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`--config ${missing}: ENOENT`));
  assert.throws(() => loadConfigFile(dir), (err: unknown) => err instanceof ConfigError && err.message.startsWith(`--config ${dir}: EISDIR`));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'logLevel: loud\n');
  assert.throws(() => loadConfigFile(bad), (err: unknown) => err instanceof ConfigError && err.message === `--config ${bad}: field "logLevel" must be one of trace, debug, info, warn, error, fatal, silent`);
});

test('authorization fields', () => {
  assert.deepEqual(parseConfigText('a.yaml', 'authorizationMode: local\nauthorizationAllowedTtlSeconds: 2.5\nauthorizationDeniedTtlSeconds: 0\n'),
    { authorizationMode: 'local', authorizationAllowedTtlSeconds: 2.5, authorizationDeniedTtlSeconds: 0 });
});
