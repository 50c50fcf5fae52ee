// The field selectors kube-apiserver supports per type, and each object's values for them, as the
// types' ToSelectableFields / GetAttrs compute them (pkg/registry/*/strategy.go). A field not
// listed here is forwarded to the apiserver, which writes the exact 400 for unsupported ones.
import { intern } from './intern.js';

export type FieldValues = Readonly<Record<string, string>>;
type Json = Readonly<Record<string, unknown>>;

/**
 * Fields whose values are (nearly) unique per object: not worth a place in the intern table
 * (metadata.name is the very string the object's name is held in already).
 */
const UNIQUE = new Set(['metadata.name', 'status.podIP', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.resourceVersion']);

function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}
function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
function bool(v: unknown): string {
  return v === true ? 'true' : 'false';
}

type Extract = (o: Json) => Record<string, string>;

const podFields: Extract = (o) => {
  const spec = obj(o['spec']);
  const status = obj(o['status']);
  // Upstream reads the internal PodIPs[0]; the v1→internal conversion puts a non-empty v1
  // status.podIP first (it wins over a differing podIPs[0]), else copies status.podIPs.
  const podIPs = status['podIPs'];
  const first = str(status['podIP']) || (Array.isArray(podIPs) && podIPs.length > 0 ? str(obj(podIPs[0])['ip']) : '');
  return {
    'spec.nodeName': str(spec['nodeName']),
    'spec.restartPolicy': str(spec['restartPolicy']),
    'spec.schedulerName': str(spec['schedulerName']),
    'spec.serviceAccountName': str(spec['serviceAccountName']),
    'spec.hostNetwork': bool(spec['hostNetwork']),
    'status.phase': str(status['phase']),
    'status.podIP': first,
    'status.nominatedNodeName': str(status['nominatedNodeName']),
  };
};

const eventFields: Extract = (o) => {
  const io = obj(o['involvedObject']);
  // core/v1 `reportingComponent` is the internal ReportingController; `source` falls back to it.
  const reporting = str(o['reportingComponent']);
  return {
    'involvedObject.kind': str(io['kind']),
    'involvedObject.namespace': str(io['namespace']),
    'involvedObject.name': str(io['name']),
    'involvedObject.uid': str(io['uid']),
    'involvedObject.apiVersion': str(io['apiVersion']),
    'involvedObject.resourceVersion': str(io['resourceVersion']),
    'involvedObject.fieldPath': str(io['fieldPath']),
    reason: str(o['reason']),
    reportingComponent: reporting,
    source: str(obj(o['source'])['component']) || reporting,
    type: str(o['type']),
  };
};

/** Per group/resource ("" group for core): type-specific fields beyond metadata.name/namespace. */
const SPECIFIC: Readonly<Record<string, Extract>> = {
  pods: podFields,
  nodes: (o) => ({ 'spec.unschedulable': bool(obj(o['spec'])['unschedulable']) }),
  namespaces: (o) => ({ 'status.phase': str(obj(o['status'])['phase']) }),
  secrets: (o) => ({ type: str(o['type']) }),
  services: (o) => ({ 'spec.clusterIP': str(obj(o['spec'])['clusterIP']), 'spec.type': str(obj(o['spec'])['type']) }),
  replicationcontrollers: (o) => ({ 'status.replicas': String(typeof obj(o['status'])['replicas'] === 'number' ? obj(o['status'])['replicas'] : 0) }),
  events: eventFields,
};

function resourceKey(group: string, resource: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

export interface FieldSet {
  /** Field names a selector may use for this type. */
  readonly supported: ReadonlySet<string>;
  /** The object's value for every supported field (metadata.name/namespace included). */
  values(o: Json, namespaced: boolean): FieldValues;
}

const SAMPLE: Json = {};

export function fieldSetFor(group: string, resource: string, namespaced: boolean): FieldSet {
  const specific = SPECIFIC[resourceKey(group, resource)];
  const names = ['metadata.name', ...(namespaced ? ['metadata.namespace'] : []), ...Object.keys(specific ? specific(SAMPLE) : {})];
  return {
    supported: new Set(names),
    values(o: Json) {
      const meta = obj(o['metadata']);
      const out: Record<string, string> = specific ? specific(o) : {};
      out['metadata.name'] = str(meta['name']);
      if (namespaced) out['metadata.namespace'] = str(meta['namespace']);
      // Repeated values (node names, namespaces, phases …) shared between objects: intern.ts.
      for (const k of Object.keys(out)) if (!UNIQUE.has(k)) out[k] = intern(out[k] as string);
      return out;
    },
  };
}
