// parseFlags: every flag, the listen forms, the errors, and flags over the --config file.
import { DEFAULT_BACKEND_OPTIONS } from '../../proxy/options.js';
import { DEFAULT_CONNECTION_LIMITS } from '../../proxy/connection-limits.js';
import { DEFAULT_FLOW_CONTROL } from '../../flowcontrol/defaults.js';
import { test, after } from 'node:test';
import { cacheConfigFrom } from '../../proxy/cache-options.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLAGS, HELP, parseFlags } from '../../proxy/flags.js';
import { ConfigError } from '../../proxy/errors.js';
import { LOG_LEVELS, parseListen, type ProxyOptions } from '../../proxy/options.js';

const dir = mkdtempSync(join(tmpdir(), 'kcp-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function options(argv: string[]): ProxyOptions {
  const r = parseFlags(argv);
  assert.equal(r.help, false, 'expected options, got help');
  if (r.help) throw new Error('unreachable');
  return r.options;
}

/** parseFlags(argv) must throw a ConfigError matching `msg` (one line, naming the problem). */
function fails(argv: string[], msg: RegExp): void {
  assert.throws(() => parseFlags(argv), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    assert.match(err.message, msg);
    assert.doesNotMatch(err.message, /\n/, 'the message is one line');
    return true;
  }, `${argv.join(' ')} should fail`);
}

const DEFAULTS: ProxyOptions = {
  kubeconfig: undefined,
  context: undefined,
  upstreams: [],
  listen: { host: '0.0.0.0', port: 8443 },
  tlsCertFile: undefined,
  tlsPrivateKeyFile: undefined,
  clientCaFile: undefined,
  writeKubeconfig: undefined,
  metricsListen: { host: '0.0.0.0', port: 9443 },
  metricsMode: 'plain',
  logLevel: 'info',
  shutdownGracePeriodSeconds: 30,
  cache: cacheConfigFrom({}),
  flowControl: DEFAULT_FLOW_CONTROL,
  flowControlSource: undefined,
  backends: DEFAULT_BACKEND_OPTIONS,
  connectionLimits: DEFAULT_CONNECTION_LIMITS,
};

test('no flags: the defaults', () => {
  assert.deepEqual(options([]), DEFAULTS);
});

test('--help and -h, alone or with other flags', () => {
  for (const argv of [['--help'], ['-h'], ['--listen', ':1', '--help'], ['--help', '--log-level', 'nope']]) {
    assert.deepEqual(parseFlags(argv), { help: true }, argv.join(' '));
  }
});

test('HELP documents every flag and every log level', () => {
  for (const [name, spec] of Object.entries(FLAGS)) {
    assert.ok(HELP.includes(`--${name} `) || HELP.includes(`--${name}\n`), `--${name} is not in HELP`);
    if ('short' in spec) assert.ok(HELP.includes(`-${spec.short},`), `-${spec.short} is not in HELP`);
  }
  for (const l of LOG_LEVELS) assert.ok(HELP.includes(l), l);
});

test('every flag sets its option (both --flag value and --flag=value)', () => {
  const cases: Array<[string[], Partial<ProxyOptions>]> = [
    [['--kubeconfig', '/k'], { kubeconfig: '/k' }],
    [['--kubeconfig=/k'], { kubeconfig: '/k' }],
    [['--context', 'ctx'], { context: 'ctx' }],
    [['--upstream', 'https://a:6443'], { upstreams: ['https://a:6443'] }],
    [['--upstream', 'https://a:6443', '--upstream=https://b:6443', '--upstream', 'https://c'], { upstreams: ['https://a:6443', 'https://b:6443', 'https://c'] }],
    [['--listen', '127.0.0.1:1'], { listen: { host: '127.0.0.1', port: 1 } }],
    [['--listen=:8443'], { listen: { host: '0.0.0.0', port: 8443 } }],
    [['--tls-cert-file', '/c', '--tls-private-key-file', '/k'], { tlsCertFile: '/c', tlsPrivateKeyFile: '/k' }],
    [['--client-ca-file', '/ca'], { clientCaFile: '/ca' }],
    [['--tls-min-version', 'VersionTLS13'], { tlsMinVersion: 'VersionTLS13' }],
    [['--tls-cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256'], { tlsCipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_AES_128_GCM_SHA256'] }],
    [['--write-kubeconfig', '/out'], { writeKubeconfig: '/out' }],
    [['--metrics-listen', '[::1]:2'], { metricsListen: { host: '::1', port: 2 } }],
    [['--metrics-mode', 'tls'], { metricsMode: 'tls' }],
    [['--metrics-mode=tls-authn'], { metricsMode: 'tls-authn' }],
    [['--log-level', 'debug'], { logLevel: 'debug' }],
    [['--shutdown-grace-period', '5'], { shutdownGracePeriodSeconds: 5 }],
    [['--shutdown-grace-period=0'], { shutdownGracePeriodSeconds: 0 }],
    [['--shutdown-grace-period', '2.5'], { shutdownGracePeriodSeconds: 2.5 }],
    // The last of a non-repeatable flag wins.
    [['--context', 'a', '--context', 'b'], { context: 'b' }],
    [['--upstream-discovery'], { backends: { ...DEFAULT_BACKEND_OPTIONS, discovery: true } }],
    [['--upstream-balance', 'round-robin'], { backends: { ...DEFAULT_BACKEND_OPTIONS, balance: 'round-robin' } }],
    [['--upstream-health-interval', '0.5'], { backends: { ...DEFAULT_BACKEND_OPTIONS, healthIntervalSeconds: 0.5 } }],
    [['--upstream-connection-max-age', '0'], { backends: { ...DEFAULT_BACKEND_OPTIONS, connectionMaxAgeSeconds: 0 } }],
    [['--forwarded-watch-max-age=30'], { backends: { ...DEFAULT_BACKEND_OPTIONS, forwardedWatchMaxAgeSeconds: 30 } }],
    [['--client-connection-max-age', '90'], { backends: { ...DEFAULT_BACKEND_OPTIONS, clientConnectionMaxAgeSeconds: 90 } }],
    [['--max-age-jitter', '0'], { backends: { ...DEFAULT_BACKEND_OPTIONS, maxAgeJitter: 0 } }],
    [['--max-connections', '0'], { connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, maxConnections: 0 } }],
    [['--max-connections-per-source', '20000'], { connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, maxConnectionsPerSource: 20000 } }],
    [['--request-header-timeout', '10'], { connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, requestHeaderTimeoutMs: 10_000 } }],
    [['--request-body-timeout', '0.5'], { connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, requestBodyTimeoutMs: 500 } }],
    [['--write-stall-timeout=0'], { connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, writeStallTimeoutMs: 0 } }],
    [['--cache-stale-after', '2'], { cache: cacheConfigFrom({ staleAfterSeconds: 2 }) }],
    [['--authorization-mode', 'local'], { cache: cacheConfigFrom({ authorizationMode: 'local' }) }],
    [['--authorization-allowed-ttl=3'], { cache: cacheConfigFrom({ authorizationAllowedTtlSeconds: 3 }) }],
    [['--authorization-denied-ttl', '0.5'], { cache: cacheConfigFrom({ authorizationDeniedTtlSeconds: 0.5 }) }],
  ];
  for (const [argv, want] of cases) assert.deepEqual(options(argv), { ...DEFAULTS, ...want }, argv.join(' '));
});

test('--log-level: each level, nothing else', () => {
  for (const l of LOG_LEVELS) assert.equal(options(['--log-level', l]).logLevel, l);
  for (const bad of ['verbose', 'INFO', 'warning', '0']) fails(['--log-level', bad], /^--log-level: must be one of trace, debug, info, warn, error, fatal, silent$/);
});

test('listen forms', () => {
  const good: Array<[string, { host: string; port: number }]> = [
    [':8443', { host: '0.0.0.0', port: 8443 }],
    [':0', { host: '0.0.0.0', port: 0 }],
    ['127.0.0.1:1', { host: '127.0.0.1', port: 1 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
    ['localhost:8443', { host: 'localhost', port: 8443 }],
    ['[::1]:2', { host: '::1', port: 2 }],
    ['[::]:443', { host: '::', port: 443 }],
    ['[fe80::1:2]:80', { host: 'fe80::1:2', port: 80 }],
  ];
  for (const [v, want] of good) {
    assert.deepEqual(parseListen(v), want, v);
    assert.deepEqual(options(['--listen', v]).listen, want, `--listen ${v}`);
    assert.deepEqual(options(['--metrics-listen', v]).metricsListen, want, `--metrics-listen ${v}`);
  }
  const bad: Array<[string, RegExp]> = [
    ['nope', /must be host:port, :port or \[ipv6\]:port, got "nope"/],
    ['8443', /must be host:port/],
    ['127.0.0.1', /must be host:port/],
    ['127.0.0.1:', /must be host:port/],
    [':', /must be host:port/],
    [':port', /must be host:port/],
    [':-1', /must be host:port/],
    [':123456', /must be host:port/],
    [':65536', /port out of range in ":65536"/],
    [':99999', /port out of range/],
    ['::1:80', /must be host:port/],
    ['[::1]', /must be host:port/],
    ['[::1]:', /must be host:port/],
    ['[]:80', /must be host:port/],
    ['[zz]:80', /must be host:port/],
    ['[fe80::1%eth0]:80', /must be host:port/],
    ['https://127.0.0.1:80', /must be host:port/],
  ];
  for (const [v, msg] of bad) {
    assert.equal(typeof parseListen(v), 'string', v);
    fails(['--listen', v], new RegExp(`^--listen: ${msg.source}`));
    fails([`--metrics-listen=${v}`], new RegExp(`^--metrics-listen: ${msg.source}`));
  }
});

test('--shutdown-grace-period: non-negative decimal seconds', () => {
  for (const bad of ['', ' ', 'x', '30s', '0x10', '1e3', 'Infinity', 'NaN', ' 5', '5 ', '1.', '.5']) {
    fails([`--shutdown-grace-period=${bad}`], /^--shutdown-grace-period: must /);
  }
  fails(['--shutdown-grace-period=-1'], /^--shutdown-grace-period: must be a number of seconds >= 0$/);
  // "-1" as a separate argument looks like a flag to node:util parseArgs; still one line naming the flag.
  fails(['--shutdown-grace-period', '-1'], /--shutdown-grace-period/);
});

test('TLS serving files come in pairs', () => {
  fails(['--tls-cert-file', '/c'], /^--tls-cert-file and --tls-private-key-file must be given together$/);
  fails(['--tls-private-key-file', '/k'], /^--tls-cert-file and --tls-private-key-file must be given together$/);
  // A pair split between the config file and the flags is a pair.
  const cfg = file('cert-only.yaml', 'tlsCertFile: /c\n');
  assert.deepEqual(options(['--config', cfg, '--tls-private-key-file', '/k']), { ...DEFAULTS, tlsCertFile: '/c', tlsPrivateKeyFile: '/k', flowControlSource: { file: cfg, flag: '--config' } });
  fails(['--config', cfg], /must be given together/);
});

test('bad flags: one line naming the problem', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--nope'], /^Unknown option '--nope'/],
    [['-x'], /^Unknown option '-x'/],
    [['--Listen', ':1'], /^Unknown option '--Listen'/],
    [['serve'], /^Unexpected argument 'serve'/],
    [['--listen'], /^Option '--listen <value>' argument missing/],
    [['--upstream'], /^Option '--upstream <value>' argument missing/],
    [['--help=yes'], /--help/],
    // An empty value is refused rather than taken as "unset" (it would silently pick a default).
    [['--kubeconfig='], /^--kubeconfig: must not be empty$/],
    [['--context', ''], /^--context: must not be empty$/],
    [['--upstream', 'https://a', '--upstream', ''], /^--upstream: must not be empty$/],
    [['--tls-cert-file=', '--tls-private-key-file='], /^--tls-cert-file: must not be empty$/],
    [['--client-ca-file='], /^--client-ca-file: must not be empty$/],
    [['--upstream-balance', 'random'], /^--upstream-balance: must be one of least-outstanding, round-robin$/],
    [['--metrics-mode', 'https'], /^--metrics-mode: must be one of plain, tls, tls-authn$/],
    [['--max-age-jitter', '2'], /^--max-age-jitter: must be a number from 0 to 1$/],
    [['--max-connections', '1.5'], /^--max-connections: must be a whole number >= 0$/],
    [['--max-connections-per-source=-1'], /^--max-connections-per-source: must be a whole number >= 0$/],
    [['--request-body-timeout', 'x'], /^--request-body-timeout: must be a number >= 0$/],
    [['--upstream-health-interval', '0'], /^--upstream-health-interval: must be a number > 0$/],
    [['--forwarded-watch-max-age=-1'], /^--forwarded-watch-max-age: must be a number >= 0$/],
    [['--write-kubeconfig='], /^--write-kubeconfig: must not be empty$/],
    [['--config='], /^--config: must not be empty$/],
    [['--log-level='], /^--log-level: must not be empty$/],
    [['--config', join(dir, 'missing.yaml')], /^--config .*missing\.yaml: ENOENT/],
  ];
  for (const [argv, msg] of cases) fails(argv, msg);
});

test('flags override the config file, field by field; unset flags keep its values', () => {
  const cfg = file('full.yaml', [
    'kubeconfig: /file/kubeconfig',
    'context: file-ctx',
    'upstreams: [https://file-a:6443, https://file-b:6443]',
    'listen: "127.0.0.1:1111"',
    'tlsCertFile: /file/tls.crt',
    'tlsPrivateKeyFile: /file/tls.key',
    'clientCaFile: /file/ca.crt',
    'writeKubeconfig: /file/out.kubeconfig',
    'metricsListen: "[::1]:2222"',
    'metricsMode: tls',
    'logLevel: warn',
    'shutdownGracePeriodSeconds: 7',
    'upstreamDiscovery: true',
    'upstreamBalance: round-robin',
    'forwardedWatchMaxAgeSeconds: 60',
    'maxAgeJitter: 0.5',
    'maxConnections: 100',
    'maxConnectionsPerSource: 0',
    'requestHeaderTimeoutSeconds: 5',
    'requestBodyTimeoutSeconds: 7',
    'writeStallTimeoutSeconds: 9',
    '',
  ].join('\n'));
  const fromFile: ProxyOptions = {
    kubeconfig: '/file/kubeconfig',
    context: 'file-ctx',
    upstreams: ['https://file-a:6443', 'https://file-b:6443'],
    listen: { host: '127.0.0.1', port: 1111 },
    tlsCertFile: '/file/tls.crt',
    tlsPrivateKeyFile: '/file/tls.key',
    clientCaFile: '/file/ca.crt',
    writeKubeconfig: '/file/out.kubeconfig',
    metricsListen: { host: '::1', port: 2222 },
    metricsMode: 'tls',
    logLevel: 'warn',
    shutdownGracePeriodSeconds: 7,
    cache: cacheConfigFrom({}),
    flowControl: DEFAULT_FLOW_CONTROL,
    flowControlSource: { file: cfg, flag: '--config' },
    backends: { ...DEFAULT_BACKEND_OPTIONS, discovery: true, balance: 'round-robin', forwardedWatchMaxAgeSeconds: 60, maxAgeJitter: 0.5 },
    connectionLimits: { ...DEFAULT_CONNECTION_LIMITS, maxConnections: 100, maxConnectionsPerSource: 0, requestHeaderTimeoutMs: 5_000, requestBodyTimeoutMs: 7_000, writeStallTimeoutMs: 9_000 },
  };
  assert.deepEqual(options(['--config', cfg]), fromFile);
  const overrides: Array<[string[], Partial<ProxyOptions>]> = [
    [['--kubeconfig', '/flag/kc'], { kubeconfig: '/flag/kc' }],
    [['--context', 'flag-ctx'], { context: 'flag-ctx' }],
    // Repeated --upstream replaces the file's list, it does not append to it.
    [['--upstream', 'https://flag:6443'], { upstreams: ['https://flag:6443'] }],
    [['--listen', ':3333'], { listen: { host: '0.0.0.0', port: 3333 } }],
    [['--tls-cert-file', '/flag/c', '--tls-private-key-file', '/flag/k'], { tlsCertFile: '/flag/c', tlsPrivateKeyFile: '/flag/k' }],
    [['--client-ca-file', '/flag/ca'], { clientCaFile: '/flag/ca' }],
    [['--write-kubeconfig', '/flag/out'], { writeKubeconfig: '/flag/out' }],
    [['--metrics-listen', '127.0.0.1:4444'], { metricsListen: { host: '127.0.0.1', port: 4444 } }],
    [['--metrics-mode', 'plain'], { metricsMode: 'plain' }],
    [['--metrics-mode', 'tls-authn'], { metricsMode: 'tls-authn' }],
    [['--log-level', 'trace'], { logLevel: 'trace' }],
    [['--shutdown-grace-period', '0'], { shutdownGracePeriodSeconds: 0 }],
    [['--max-connections', '7'], { connectionLimits: { ...fromFile.connectionLimits ?? DEFAULT_CONNECTION_LIMITS, maxConnections: 7 } }],
  ];
  for (const [flags, want] of overrides) {
    // Before or after --config: the flag wins either way.
    assert.deepEqual(options(['--config', cfg, ...flags]), { ...fromFile, ...want }, flags.join(' '));
    assert.deepEqual(options([...flags, '--config', cfg]), { ...fromFile, ...want }, flags.join(' '));
  }
  // A flag's value is validated even when the file has a valid one.
  fails(['--config', cfg, '--listen', 'nope'], /^--listen: must be host:port/);
  fails(['--config', cfg, '--log-level', 'loud'], /^--log-level: must be one of/);
});

test('a bad config file fails even when flags would override its bad field', () => {
  const cfg = file('bad-listen.yaml', 'listen: nope\n');
  fails(['--config', cfg, '--listen', ':1'], /field "listen" must be host:port/);
  const unknown = file('unknown.yaml', 'listenAddress: ":1"\n');
  fails(['--config', unknown], /unknown field "listenAddress"/);
});

test('cache flags: resources, indexed fields, numbers; errors name the flag', () => {
  const parsed = parseFlags(['--cache-resources', 'pods,secrets,deployments.apps,widgets.example.com/v1beta1', '--cache-indexed-fields', 'pods=spec.nodeName,pods=status.phase,secrets=type',
    '--cache-page-size', '100', '--cache-bookmark-interval', '0.5', '--cache-freshness-wait', '2', '--cache-snapshot-ttl', '60']);
  assert.ok(!parsed.help);
  const c = parsed.options.cache;
  assert.ok(c);
  assert.deepEqual(c.resources.map((r) => [r.group, r.version, r.resource, r.indexedFields]), [
    ['', 'v1', 'pods', ['spec.nodeName', 'status.phase']],
    ['', 'v1', 'secrets', ['type']],
    ['apps', 'v1', 'deployments', []],
    ['example.com', 'v1beta1', 'widgets', []],
  ]);
  assert.equal(c.pageSize, 100);
  assert.equal(c.bookmarkIntervalSeconds, 0.5);
  assert.equal(c.freshnessBudgetMs, 2000);
  assert.equal(c.snapshots.ttlSeconds, 60);
  const off = parseFlags(['--cache-resources', 'none']);
  assert.ok(!off.help && off.options.cache === undefined);
  fails(['--cache-resources', 'Pods!'], /--cache-resources/);
  fails(['--cache-resources', 'widgets.example.com'], /--cache-resources.*version/);
  fails(['--cache-indexed-fields', 'pods'], /--cache-indexed-fields/);
  fails(['--cache-indexed-fields', 'secrets=type'], /--cache-indexed-fields: secrets is not a cached resource/);
  fails(['--cache-resources', 'configmaps', '--cache-indexed-fields', 'pods=spec.nodeName'], /--cache-indexed-fields: pods is not a cached resource/);
  // Without pods, the default index of pods by node is not asked for: no error.
  const noPods = parseFlags(['--cache-resources', 'configmaps,secrets']);
  assert.ok(!noPods.help && noPods.options.cache?.resources.every((r) => r.indexedFields.length === 0));
  fails(['--cache-page-size', '0'], /--cache-page-size/);
  fails(['--cache-page-size', 'x'], /--cache-page-size/);
  fails(['--cache-freshness-wait', '-1'], /--cache-freshness-wait/);
});

test('--flow-control-config: the file is the flowControl section; a bad one names its field', () => {
  const good = file('flow.yaml', 'levels:\n  - { name: a, qps: 5 }\ndefaultLevel: a\n');
  const o = options(['--flow-control-config', good]);
  assert.deepEqual(o.flowControlSource, { file: good, flag: '--flow-control-config' });
  assert.equal(o.flowControl.levels[0]?.qps, 5);
  assert.deepEqual(o.flowControl.rules, [], 'levels given without rules: no rules');
  // It takes precedence over the section in --config, which then is not the source.
  const cfg = file('with-flow.yaml', 'flowControl:\n  enabled: false\n');
  assert.equal(options(['--config', cfg]).flowControl.enabled, false);
  assert.deepEqual(options(['--config', cfg, '--flow-control-config', good]).flowControlSource, { file: good, flag: '--flow-control-config' });
  fails(['--flow-control-config', file('bad-flow.yaml', 'global:\n  cache:\n    queue: { maxWaitSeconds: -1 }\n')],
    /^--flow-control-config .*bad-flow\.yaml: field "flowControl\.global\.cache\.queue\.maxWaitSeconds" must be a number >= 0$/);
  fails(['--config', file('bad-section.yaml', 'flowControl: [1]\n')], /^--config .*bad-section\.yaml: field "flowControl" must be a mapping$/);
});

test('authorization mode: probe by default, local on request, TTLs; errors name the flag or field', () => {
  const def = options([]).cache;
  assert.deepEqual(def?.authorization, { mode: 'probe', allowedTtlSeconds: 10, deniedTtlSeconds: 2 });
  const local = options(['--authorization-mode', 'local', '--authorization-allowed-ttl', '2', '--authorization-denied-ttl', '1']).cache;
  assert.deepEqual(local?.authorization, { mode: 'local', allowedTtlSeconds: 2, deniedTtlSeconds: 1 });
  fails(['--authorization-mode', 'webhook'], /--authorization-mode: must be one of probe, local/);
  fails(['--authorization-allowed-ttl', '-1'], /--authorization-allowed-ttl/);
  fails(['--authorization-denied-ttl', 'x'], /--authorization-denied-ttl/);
  const cfg = file('authz.yaml', 'authorizationMode: local\nauthorizationAllowedTtlSeconds: 4\nauthorizationDeniedTtlSeconds: 1\n');
  assert.deepEqual(options(['--config', cfg]).cache?.authorization, { mode: 'local', allowedTtlSeconds: 4, deniedTtlSeconds: 1 });
  // Flags override the file, field by field.
  assert.deepEqual(options(['--config', cfg, '--authorization-mode', 'probe']).cache?.authorization, { mode: 'probe', allowedTtlSeconds: 4, deniedTtlSeconds: 1 });
});
