// Splits a byte stream into newline-terminated lines (watch events), without copying when a
// chunk holds whole lines.

export class LineSplitter {
  #rest: Buffer | undefined;

  *push(chunk: Buffer): Generator<Buffer> {
    let buf = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
    this.#rest = undefined;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      if (nl > start) yield buf.subarray(start, nl);
      start = nl + 1;
    }
    if (start < buf.length) {
      buf = buf.subarray(start);
      this.#rest = buf;
    }
  }
}
