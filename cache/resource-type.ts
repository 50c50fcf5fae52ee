// A cached resource, addressed by group/version/resource, with what discovery says about it.

export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** `v1` or `group/version`. */
export function apiVersionOf(t: Pick<ResourceType, 'group' | 'version'>): string {
  return t.group === '' ? t.version : `${t.group}/${t.version}`;
}

/** The collection path across namespaces: /api/v1/pods, /apis/apps/v1/deployments. */
export function collectionPath(t: ResourceType): string {
  return t.group === '' ? `/api/${t.version}/${t.resource}` : `/apis/${t.group}/${t.version}/${t.resource}`;
}

/** `pods`, `deployments.apps`: the resource's name in metrics and config. */
export function resourceName(t: Pick<ResourceType, 'group' | 'resource'>): string {
  return t.group === '' ? t.resource : `${t.resource}.${t.group}`;
}
