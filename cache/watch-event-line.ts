// Reading one line of an apiserver watch stream (`{"type":"…","object":{…}}`) without parsing the
// whole object.
import { topLevelMember, watchEventObject } from './json-scan.js';
import { parseResourceVersion } from './resource-version.js';
import { parseJsonWithheld } from './json-error.js';

/** The event's type: the line starts with `{"type":"`, as the apiserver writes it. */
export function watchEventType(line: Buffer): string {
  return line.toString('latin1', 9, line.indexOf(0x22, 9));
}

/** A watch event's type and resourceVersion, parsing only the object's metadata. */
export function eventResourceVersion(line: Buffer): { type: string; rv: bigint } {
  const type = watchEventType(line);
  const meta = topLevelMember(watchEventObject(line), 'metadata');
  const m: unknown = meta ? parseJsonWithheld(meta.toString('utf8')) : undefined;
  const rv = typeof m === 'object' && m !== null && 'resourceVersion' in m ? parseResourceVersion(m.resourceVersion) : undefined;
  return { type, rv: rv ?? 0n };
}
