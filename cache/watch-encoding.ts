// Watch events on the wire, as kube-apiserver writes them in JSON: one line per event,
// `{"type":"ADDED","object":{…}}\n`, objects with kind/apiVersion. Encoded once per event and shared
// by every watcher it goes to. Stored objects are kept compressed (cache/stored-object.ts): an
// event's object is inflated once, for the line every watcher shares.
import { skipValue, topLevelMember, withTypeMeta } from './json-scan.js';
import type { BodyType } from './list-body.js';
import { itemBytes, itemsBytes, type StoredObject } from './stored-object.js';

export type WireEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

const HEADS: Record<WireEventType, Buffer> = {
  ADDED: Buffer.from('{"type":"ADDED","object":'),
  MODIFIED: Buffer.from('{"type":"MODIFIED","object":'),
  DELETED: Buffer.from('{"type":"DELETED","object":'),
  BOOKMARK: Buffer.from('{"type":"BOOKMARK","object":'),
  ERROR: Buffer.from('{"type":"ERROR","object":'),
};
const TAIL = Buffer.from('}\n');

export function eventLine(type: WireEventType, object: Buffer): Buffer {
  return Buffer.concat([HEADS[type], object, TAIL]);
}

/** A stored object as a watch event's object (with kind/apiVersion). */
export function eventObject(t: BodyType, o: StoredObject): Buffer {
  return asEventObject(t, itemBytes(o));
}

function asEventObject(t: BodyType, item: Buffer): Buffer {
  return t.sortedKeys ? item : withTypeMeta(item, t.kind, t.apiVersion);
}

/** Objects inflated per zlib call for a watch's initial ADDED events. */
const INITIAL_BATCH = 64;

/**
 * The ADDED lines of a watch's initial state, made as the watcher takes them (in order): objects
 * are inflated a batch at a time, one zlib call per batch instead of one per object.
 */
export function initialEncoder(t: BodyType, initial: readonly StoredObject[]): (o: StoredObject) => Buffer {
  /** Lines made ahead, for initial[next], initial[next + 1], …; none kept once taken. */
  let ahead: Buffer[] = [];
  let next = 0;
  return (o) => {
    if (ahead.length === 0 || initial[next] !== o) {
      const at = initial[next] === o ? next : initial.indexOf(o);
      if (at < 0) return eventLine('ADDED', eventObject(t, o));
      next = at;
      ahead = itemsBytes(initial.slice(at, at + INITIAL_BATCH)).map((item) => eventLine('ADDED', asEventObject(t, item)));
    }
    next++;
    return ahead.shift() as Buffer;
  };
}

const RV_KEY = Buffer.from('"resourceVersion":"');

/** Where the value of metadata.resourceVersion sits in an object's bytes: [start, end) of the digits. */
function resourceVersionSpan(obj: Buffer): [number, number] | undefined {
  const meta = topLevelMember(obj, 'metadata');
  if (!meta) return undefined;
  const base = meta.byteOffset - obj.byteOffset;
  // Walk metadata's own members (not nested ones such as annotations) to find resourceVersion.
  let i = 1;
  while (i < meta.length && meta[i] !== 0x7d) {
    if (meta[i] === 0x2c) i++;
    const keyStart = i;
    const keyEnd = skipValue(meta, i);
    const isRv = meta.subarray(keyStart, keyEnd + 2).equals(RV_KEY);
    i = keyEnd + 1;
    const valueEnd = skipValue(meta, i);
    if (isRv) return [base + i + 1, base + valueEnd - 1];
    i = valueEnd;
  }
  return undefined;
}

/** The object with metadata.resourceVersion set to `rv` (DELETED events for objects leaving a selector). */
export function withResourceVersion(obj: Buffer, rv: bigint): Buffer {
  const span = resourceVersionSpan(obj);
  if (!span) return obj;
  return Buffer.concat([obj.subarray(0, span[0]), Buffer.from(rv.toString()), obj.subarray(span[1])]);
}

/**
 * BOOKMARK objects: the zero value of the type with only metadata.resourceVersion set — its JSON
 * depends on the type (a Pod's carries `"spec":{"containers":null},"status":{}`), so it is learnt
 * from a bookmark the apiserver sent the cache's own watches.
 */
export class BookmarkTemplate {
  readonly #before: Buffer;
  readonly #after: Buffer;

  private constructor(before: Buffer, after: Buffer) {
    this.#before = before;
    this.#after = after;
  }

  static fromSample(sample: Buffer): BookmarkTemplate | undefined {
    const span = resourceVersionSpan(sample);
    if (!span) return undefined;
    return new BookmarkTemplate(Buffer.from(sample.subarray(0, span[0])), Buffer.from(sample.subarray(span[1])));
  }

  /** The bookmark line; `initialEventsEnd` adds the k8s.io/initial-events-end annotation of watch-lists. */
  line(rv: bigint, initialEventsEnd: boolean): Buffer {
    const annotation = initialEventsEnd ? '","annotations":{"k8s.io/initial-events-end":"true"}' : '"';
    // #after starts with the closing quote of the resourceVersion value.
    return eventLine('BOOKMARK', Buffer.concat([this.#before, Buffer.from(`${rv}${annotation}`), this.#after.subarray(1)]));
  }
}
