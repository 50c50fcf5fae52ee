// kube-apiserver's long-running request check: watches and proxies, and the attach, exec, log,
// portforward and proxy subresources (cmd/kube-apiserver server config, BasicLongRunningRequestCheck).
import type { RequestInfo } from './request-info.js';

const LONG_RUNNING_VERBS = new Set(['watch', 'proxy']);
const LONG_RUNNING_SUBRESOURCES = new Set(['attach', 'exec', 'proxy', 'log', 'portforward']);

export function isLongRunning(info: RequestInfo): boolean {
  return LONG_RUNNING_VERBS.has(info.verb) || (info.isResourceRequest && LONG_RUNNING_SUBRESOURCES.has(info.subresource));
}
