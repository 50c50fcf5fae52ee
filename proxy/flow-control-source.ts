// Where the flow-control configuration comes from — the `flowControl` section of --config, or the
// whole of --flow-control-config — and its reload at run time (SIGHUP, or the file changing):
// an invalid new configuration is refused with a log line naming the field, and the one in force stays.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import yaml from 'js-yaml';
import type { Logger } from 'pino';
import { ConfigError } from './errors.js';
import { DEFAULT_FLOW_CONTROL } from '../flowcontrol/defaults.js';
import { FlowControlConfigError, parseFlowControlConfig, type FlowControlConfig } from '../flowcontrol/config.js';
import type { FlowControl } from '../flowcontrol/flow-control.js';

export interface FlowControlSource {
  readonly file: string;
  /** The flag the file came from, for messages. */
  readonly flag: '--config' | '--flow-control-config';
}

function readDoc(src: FlowControlSource): unknown {
  const text = readFileSync(src.file, 'utf8');
  const doc: unknown = yaml.load(text, { schema: yaml.CORE_SCHEMA, filename: src.file });
  if (src.flag === '--flow-control-config') return doc;
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>)['flowControl'] : undefined;
}

/** Checks a flowControl document; a ConfigError names the flag, the file and the field. */
export function flowControlConfigFrom(doc: unknown, src: FlowControlSource): FlowControlConfig {
  try {
    return parseFlowControlConfig(doc, DEFAULT_FLOW_CONTROL, 'flowControl');
  } catch (err) {
    if (err instanceof FlowControlConfigError) throw new ConfigError(`${src.flag} ${src.file}: field "${err.field}" ${err.message.slice(err.field.length + 2)}`);
    throw err;
  }
}

/** Loads the configuration at start (errors stop the proxy). */
export function loadFlowControlConfig(src: FlowControlSource): FlowControlConfig {
  let doc: unknown;
  try {
    doc = readDoc(src);
  } catch (err) {
    throw new ConfigError(`${src.flag} ${src.file}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
  }
  return flowControlConfigFrom(doc, src);
}

export interface FlowControlReloader {
  /** Re-reads the file and applies it; returns the error message when refused. */
  reload(): string | undefined;
  stop(): void;
}

/** Reloads on demand and when the file changes (polled every `intervalMs`: also catches ConfigMap symlink swaps). */
export function watchFlowControlConfig(src: FlowControlSource, fc: FlowControl, log: Logger, intervalMs = 500): FlowControlReloader {
  let applied = JSON.stringify(fc.config);
  const reload = (): string | undefined => {
    let config: FlowControlConfig;
    try {
      config = loadFlowControlConfig(src);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log.error({ file: src.file, err: message }, 'flow-control configuration refused; the previous one stays in force');
      return message;
    }
    const text = JSON.stringify(config);
    if (text === applied) return undefined;
    fc.reload(config);
    applied = text;
    log.info({ file: src.file, levels: config.levels.length, rules: config.rules.length, enabled: config.enabled }, 'flow-control configuration reloaded');
    return undefined;
  };
  const onChange = () => {
    reload();
  };
  watchFile(src.file, { interval: intervalMs, persistent: false }, onChange);
  return { reload, stop: () => unwatchFile(src.file, onChange) };
}
