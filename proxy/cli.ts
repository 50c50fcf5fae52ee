#!/usr/bin/env node
// The kube-cache-proxy command.
import { pino } from 'pino';
import { ConfigError } from './errors.js';
import { HELP, parseFlags } from './flags.js';
import { LOG_SAFETY, scrubErrorText } from './log-redaction.js';

async function main(): Promise<void> {
  const parsed = parseFlags(process.argv.slice(2));
  if (parsed.help) {
    process.stdout.write(HELP);
    return;
  }
  const o = parsed.options;
  // Redacted fields and scrubbed error texts: proxy/log-redaction.ts.
  const log = pino({ level: o.logLevel, base: { component: 'kube-cache-proxy' }, ...LOG_SAFETY });

  // Signals are handled from the start: one that arrives while starting up stops the proxy as soon
  // as it is up (exit 0), instead of killing the process mid-startup.
  let stopRequested: string | undefined;
  let stop: (signal: string) => void = (signal) => {
    stopRequested ??= signal;
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // SIGHUP re-reads the flow-control configuration (a refused one is logged; the old one stays);
  // one arriving during startup is ignored rather than killing the process.
  let reload = () => {};
  process.on('SIGHUP', () => reload());

  // The server's modules (fastify, undici, …) are loaded only now: --help and flag errors stay quick.
  const { runProxy } = await import('./main.js');
  const proxy = await runProxy(o, log);
  let stopping = false;
  stop = (signal: string) => {
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
  reload = () => {
    log.info('SIGHUP: reloading the flow-control configuration');
    proxy.reloadFlowControl();
  };
  if (stopRequested !== undefined) stop(stopRequested);
}

main().catch((err: unknown) => {
  const msg = err instanceof ConfigError ? err.message : `kube-cache-proxy: ${err instanceof Error ? err.message : String(err)}`;
  process.stderr.write(`${scrubErrorText(msg.split('\n')[0] ?? '')}\n`);
  process.exit(1);
});
