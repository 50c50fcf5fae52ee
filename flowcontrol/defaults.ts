// Flow control out of the box: protects an apiserver with kube-apiserver's own default limits,
// lets control-plane components and system:masters through first, limits kubelets per node and
// shares everything else fairly per user.
import { DEFAULT_COST } from './cost.js';
import { DEFAULT_RETRY_AFTER } from './congestion.js';
import type { FlowControlConfig, QueueSpec } from './config.js';

const queue = (length: number, lengthPerFlow: number, maxWaitSeconds: number): QueueSpec => ({ length, lengthPerFlow, maxWaitSeconds });

export const DEFAULT_FLOW_CONTROL: FlowControlConfig = {
  enabled: true,
  retryAfter: DEFAULT_RETRY_AFTER,
  cost: DEFAULT_COST,
  global: {
    // kube-apiserver's --max-requests-inflight and --max-mutating-requests-inflight defaults.
    readOnly: { name: 'readOnly', exempt: false, maxInflight: 400, queue: queue(2000, 2000, 10), flowBy: 'user' },
    mutating: { name: 'mutating', exempt: false, maxInflight: 200, queue: queue(1000, 1000, 10), flowBy: 'user' },
    // Reads the cache answers: the proxy's own capacity (each still sends one probe upstream).
    cache: { name: 'cache', exempt: false, maxInflight: 1000, queue: queue(4000, 4000, 10), flowBy: 'user' },
  },
  levels: [
    { name: 'exempt', exempt: true, queue: queue(0, 0, 0), flowBy: 'user' },
    { name: 'control-plane', exempt: false, maxInflight: 200, queue: queue(1000, 1000, 10), flowBy: 'userAgent' },
    {
      name: 'kubelets', exempt: false, maxInflight: 200, queue: queue(5000, 10, 10), flowBy: 'user',
      perFlow: { qps: 10, burst: 50, maxInflight: 5, maxWatches: 1000 },
    },
    { name: 'default', exempt: false, maxInflight: 200, queue: queue(2000, 500, 10), flowBy: 'user' },
  ],
  rules: [
    { name: 'system-masters', level: 'exempt', groups: ['system:masters'] },
    { name: 'health', level: 'exempt', nonResourceURLs: ['/healthz', '/healthz/*', '/livez', '/livez/*', '/readyz', '/readyz/*'] },
    {
      name: 'control-plane', level: 'control-plane',
      users: ['system:kube-controller-manager', 'system:kube-scheduler', 'system:apiserver'],
    },
    {
      name: 'control-plane-agents', level: 'control-plane',
      userAgents: [{ prefix: 'kube-controller-manager/' }, { prefix: 'kube-scheduler/' }, { prefix: 'kube-apiserver/' }],
    },
    { name: 'nodes', level: 'kubelets', groups: ['system:nodes'] },
    { name: 'kubelets', level: 'kubelets', userAgents: [{ prefix: 'kubelet/' }] },
  ],
  defaultLevel: 'default',
};
