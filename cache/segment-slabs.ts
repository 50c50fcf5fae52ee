// Where the cached objects' packed deflate segments live: in large shared slabs, not in a Buffer of
// their own. A Buffer per object cost ~150 bytes of heap (the typed array and its backing-store
// bookkeeping) and one malloc each, interleaved with the compressor's transient allocations, which
// left the malloc heap fragmented (measured in bench/README.md, "Memory"). An object holds its slab
// and an offset and a length: plain numbers.
//
// A segment is written into a slab of the arena of the Store it is meant for when it is made
// (cache/stored-object.ts), becomes a member when the store adopts the object, and is released when
// the object leaves the store (replaced, deleted). A slab that is no longer being filled and whose
// adopted bytes fall below COMPACT_BELOW of its used bytes is compacted: its members are copied into
// the arena's current slab, and it is left to whatever still refers to it (objects in the watch
// history or in a continue-token snapshot, which it keeps valid: segments are never changed in place)
// and then to the garbage collector. Segments never adopted (a watch event's DELETED object) count
// as free room in their slab.

/** Slabs grow from SLAB_MIN to SLAB_MAX bytes (a store of a few objects keeps a small one). */
const SLAB_MIN = 64 * 1024;
const SLAB_MAX = 1024 * 1024;
/** Segments larger than this get a slab of their own, exactly sized. */
const OWN_ABOVE = 128 * 1024;
/** A full slab whose adopted bytes are below this share of its used bytes is compacted. */
const COMPACT_BELOW = 2 / 3;

export class Slab {
  readonly buf: Buffer;
  /** Bytes written (members, released members, and segments never adopted). */
  used = 0;
  /** Bytes of the members' segments. */
  live = 0;
  /** The segments adopted into this slab, by slot; undefined once released or moved. */
  members: Array<Placed | undefined> = [];
  readonly arena: SlabArena;

  constructor(bytes: number, arena: SlabArena) {
    this.buf = Buffer.allocUnsafeSlow(bytes);
    this.arena = arena;
  }
}

/** What holds a segment: its slab, where it starts, its length, and its slot among the slab's members (-1: none). */
export interface Placed {
  slab: Slab;
  at: number;
  len: number;
  slot: number;
}

/**
 * The slabs one Store keeps its objects' segments in. Segments are written into it when made (for
 * the store they are meant for) and become members when the store adopts them; a segment made
 * elsewhere is copied in.
 */
export class SlabArena {
  #current: Slab | undefined;
  #next = SLAB_MIN;

  /**
   * Room for `len` bytes in the current slab; the caller writes them. A full slab is sealed, and
   * compacted at once when its members fill less than COMPACT_BELOW of it (segments never adopted).
   */
  room(len: number): { slab: Slab; at: number } {
    if (len > OWN_ABOVE) {
      const own = new Slab(len, this);
      own.used = len;
      return { slab: own, at: 0 };
    }
    const cur = this.#current;
    if (!cur || cur.used + len > cur.buf.length) {
      this.#current = new Slab(this.#next, this);
      this.#next = Math.min(SLAB_MAX, this.#next * 2);
      if (cur && cur.live < cur.used * COMPACT_BELOW) this.#compact(cur);
      return this.room(len);
    }
    const at = cur.used;
    cur.used += len;
    return { slab: cur, at };
  }

  /** Makes `p` a member, copying its segment in when it was written elsewhere (leaving that arena). */
  adopt(p: Placed): void {
    if (p.slab.arena === this) {
      if (p.slot < 0) this.#join(p);
      return;
    }
    leave(p);
    const from = p.slab;
    const fromAt = p.at;
    const { slab, at } = this.room(p.len);
    from.buf.copy(slab.buf, at, fromAt, fromAt + p.len);
    p.slab = slab;
    p.at = at;
    this.#join(p);
  }

  /** `p` left the store: its bytes stay valid for those who still hold it, but no longer count. */
  release(p: Placed): void {
    if (p.slab.arena !== this) return;
    const slab = p.slab;
    leave(p);
    if (slab === this.#current) return;
    if (slab.live === 0) slab.members = [];
    else if (slab.live < slab.used * COMPACT_BELOW) this.#compact(slab);
  }

  #join(p: Placed): void {
    p.slot = p.slab.members.push(p) - 1;
    p.slab.live += p.len;
  }

  /** Copies the slab's members into the current slab; the slab is left to those that still hold it. */
  #compact(slab: Slab): void {
    const members = slab.members;
    slab.members = [];
    slab.live = 0;
    for (const p of members) {
      if (!p || p.slab !== slab) continue;
      const { slab: to, at } = this.room(p.len);
      slab.buf.copy(to.buf, at, p.at, p.at + p.len);
      p.slab = to;
      p.at = at;
      this.#join(p);
    }
  }
}

function leave(p: Placed): void {
  const s = p.slab;
  if (p.slot < 0 || s.members[p.slot] !== p) return;
  s.members[p.slot] = undefined;
  s.live -= p.len;
  p.slot = -1;
}

/** Where segments made for no store go (tests, tools); a store adopting one copies it. */
export const UNOWNED = new SlabArena();
