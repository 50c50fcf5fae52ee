// A TCP relay in front of one apiserver, to break connections without killing processes. TLS
// passes through untouched (the apiserver's certificate covers 127.0.0.1, where the relay listens).
//
// Modes, for connections from then on:
// - pass: bytes flow both ways;
// - blackhole: every connection, open or new, stays open but no byte is forwarded either way (a
//   dead peer behind a NAT, a hung apiserver): only the other side's timeouts can tell;
// - refuse: new connections are destroyed at once (existing ones keep flowing; `dropAll` cuts them).
// `blackholeOpen` silences only the connections open now (a NAT table flushed under them), new ones
// pass: whoever holds one must notice by itself.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type RelayMode = 'pass' | 'blackhole' | 'refuse';

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  blackholed: boolean;
}

export class TcpRelay {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<Pair>();
  #mode: RelayMode = 'pass';
  /** Connections accepted, in total. */
  accepted = 0;

  private constructor(server: Server, target: { host: string; port: number }) {
    this.#server = server;
    this.#target = target;
  }

  /** Starts a relay on 127.0.0.1 (a free port) to `target` (an https URL's host and port). */
  static async start(target: { host: string; port: number }): Promise<TcpRelay> {
    const server = createServer();
    const relay = new TcpRelay(server, target);
    server.on('connection', (c) => relay.#accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return relay;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The URL to use in place of the apiserver's. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get mode(): RelayMode {
    return this.#mode;
  }

  /** Connections open through the relay now. */
  get open(): number {
    return this.#pairs.size;
  }

  setMode(mode: RelayMode): void {
    this.#mode = mode;
  }

  /** Silences every connection open now (as blackhole mode would), letting new ones pass. */
  blackholeOpen(): void {
    for (const p of this.#pairs) p.blackholed = true;
  }

  /** Destroys the connections `blackholeOpen` silenced (so that no pool keeps them). */
  dropBlackholed(): void {
    for (const p of [...this.#pairs]) {
      if (!p.blackholed) continue;
      p.client.destroy();
      p.upstream.destroy();
      this.#pairs.delete(p);
    }
  }

  /** Destroys every open connection (both sides see a reset). */
  dropAll(): void {
    for (const p of this.#pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.accepted++;
    if (this.#mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = connect(this.#target);
    const pair: Pair = { client, upstream, blackholed: false };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    // Forwarding by hand (not pipe): in blackhole mode the bytes that arrive are dropped, not
    // buffered and delivered when the mode changes, as a dead network would lose them (a
    // connection that lived through a blackhole is broken for good: its TLS stream has holes).
    const silent = () => this.#mode === 'blackhole' || pair.blackholed;
    client.on('data', (b: Buffer) => {
      if (!silent() && !upstream.destroyed) upstream.write(b);
    });
    upstream.on('data', (b: Buffer) => {
      if (!silent() && !client.destroyed) client.write(b);
    });
  }
}
