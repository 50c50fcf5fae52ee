// A child process of a benchmark's own (its clients, apart so that their CPU is counted apart and
// their work does not delay the parent's), driven over IPC: each request is sent with a sequence
// number and answered by a reply carrying the same one. The child answers `{ n, req }` with
// `{ n, ok: true, reply }` or `{ n, ok: false, error }`.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

type Reply = { readonly n: number; readonly ok: true; readonly reply: unknown } | { readonly n: number; readonly ok: false; readonly error: string };

export class IpcChild<Req> {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 1;
  #exited: Promise<void>;

  /**
   * Forks `module` (a URL of a compiled module). `name` prefixes the child's errors; `process` names
   * it when it exits with requests unanswered.
   */
  constructor(module: URL, name: string, process: string) {
    const file = fileURLToPath(module);
    this.#child = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    this.#child.on('message', (m: unknown) => {
      const r = m as Reply;
      const p = this.#pending.get(r.n);
      if (!p) return;
      this.#pending.delete(r.n);
      if (r.ok) p.resolve(r.reply);
      else p.reject(new Error(`${name}: ${r.error}`));
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`${process} exited (${code ?? signal})`));
      this.#pending.clear();
      resolve();
    }));
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  call<T>(req: Req): Promise<T> {
    const n = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(n, { resolve: (v) => resolve(v as T), reject });
      this.#child.send({ n, req } satisfies { readonly n: number; readonly req: Req });
    });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.disconnect();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/**
 * The child's side: answers each `{ n, req }` from the parent with `handle(req)`'s result (or its
 * error), and runs `stop` then exits when the parent disconnects. Does nothing outside a fork.
 */
export function answerParent<Req>(handle: (req: Req) => Promise<unknown>, stop: () => Promise<unknown>): void {
  if (!process.send) return;
  process.on('message', (m: unknown) => {
    const env = m as { readonly n: number; readonly req: Req };
    handle(env.req).then(
      (reply) => process.send?.({ n: env.n, ok: true, reply } satisfies Reply),
      (err: unknown) => process.send?.({ n: env.n, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Reply),
    );
  });
  process.on('disconnect', () => {
    void stop().finally(() => process.exit(0));
  });
}
