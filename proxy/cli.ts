#!/usr/bin/env node
// The kube-cache-proxy command.
import { pino } from 'pino';
import { ConfigError } from './errors.js';
import { HELP, parseFlags } from './flags.js';
import { runProxy } from './main.js';

async function main(): Promise<void> {
  const parsed = parseFlags(process.argv.slice(2));
  if (parsed.help) {
    process.stdout.write(HELP);
    return;
  }
  const o = parsed.options;
  const log = pino({ level: o.logLevel, base: { component: 'kube-cache-proxy' }, redact: ['req.headers.authorization'] });
  const proxy = await runProxy(o, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    proxy.shutdown().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  const msg = err instanceof ConfigError ? err.message : `kube-cache-proxy: ${err instanceof Error ? err.message : String(err)}`;
  process.stderr.write(`${msg.split('\n')[0]}\n`);
  process.exit(1);
});
