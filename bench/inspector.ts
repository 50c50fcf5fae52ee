// A full garbage collection in another Node process, through its inspector (started with
// `--inspect=127.0.0.1:<port>` in NODE_OPTIONS): the benchmark's way to read a proxy's live heap
// without changing the proxy. HeapProfiler.collectGarbage of the DevTools protocol.
import WebSocket from 'ws';
import { request } from 'undici';

export class Inspector {
  readonly #ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, (error: string | undefined) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: WebSocket.RawData) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      const m: unknown = JSON.parse(text);
      if (typeof m !== 'object' || m === null || !('id' in m) || typeof m.id !== 'number') return;
      const done = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      done?.('error' in m ? JSON.stringify(m.error) : undefined);
    });
    ws.on('close', () => {
      for (const done of this.#pending.values()) done('the inspector connection closed');
      this.#pending.clear();
    });
  }

  /** Connects to the inspector listening on 127.0.0.1:port, or undefined if there is none. */
  static async connect(port: number): Promise<Inspector | undefined> {
    try {
      const res = await request(`http://127.0.0.1:${port}/json/list`);
      const list: unknown = await res.body.json();
      const first: unknown = Array.isArray(list) ? list[0] : undefined;
      const url = typeof first === 'object' && first !== null && 'webSocketDebuggerUrl' in first && typeof first.webSocketDebuggerUrl === 'string' ? first.webSocketDebuggerUrl : undefined;
      if (!url) return undefined;
      const ws = new WebSocket(url);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return new Inspector(ws);
    } catch {
      return undefined;
    }
  }

  #call(method: string): Promise<void> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (error) => (error ? reject(new Error(`${method}: ${error}`)) : resolve()));
      this.#ws.send(JSON.stringify({ id, method }));
    });
  }

  /** Two full collections (the second frees what the first's finalizers released). */
  async collectGarbage(): Promise<void> {
    await this.#call('HeapProfiler.collectGarbage');
    await this.#call('HeapProfiler.collectGarbage');
  }

  close(): void {
    this.#ws.close();
  }
}
