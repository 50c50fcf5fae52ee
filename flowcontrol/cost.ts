// The cost model: what a request costs where it is served, in tokens (taken from token buckets) and
// seats (held in flight, as kube-apiserver's APF work estimator counts them).
//
// - Served by the apiserver, a LIST (or a watch that starts with the current state) of a resource
//   the cache holds costs in proportion to the objects it returns: ceil(objects / objectsPerToken)
//   tokens, at least 1, and as many seats up to maxSeats (the apiserver's list work estimator:
//   100 objects a seat, at most 10). An unknown count costs 1.
// - Every other request served by the apiserver costs 1.
// - A read the cache answers costs the apiserver only its probe (a LIST with limit=1 or the same
//   GET): 1 token and 1 seat, and it passes the proxy's own `cache` level instead of `readOnly`.
// - Long-running requests (watches, exec, …) hold no seat once admitted; they count against
//   maxWatches instead.

import type { RequestAttributes } from './attributes.js';

export interface CostSpec {
  readonly objectsPerToken: number;
  readonly maxSeats: number;
}

export const DEFAULT_COST: CostSpec = { objectsPerToken: 100, maxSeats: 10 };

export interface Cost {
  readonly tokens: number;
  readonly seats: number;
}

const ONE: Cost = { tokens: 1, seats: 1 };
const WATCH: Cost = { tokens: 1, seats: 0 };

export function costOf(a: RequestAttributes, spec: CostSpec): Cost {
  if (a.source === 'apiserver' && a.objects !== undefined && (a.verb === 'list' || a.verb === 'watch')) {
    const tokens = Math.max(1, Math.ceil(a.objects / spec.objectsPerToken));
    return { tokens, seats: a.longRunning ? 0 : Math.min(tokens, spec.maxSeats) };
  }
  return a.longRunning ? WATCH : ONE;
}
