import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { freePort } from '../../src/db/embedded.js';

/**
 * A loopback TCP proxy a test can cut and restore: cut drops every connection and refuses new ones,
 * as a network partition would, while the server behind it keeps its data. It can also hold one
 * command back (`holdNext`): what a client sends from the first chunk that matches is kept until
 * `release()`, so a test can make another client's command land first, deterministically.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private hold: { pattern: RegExp; held: () => void } | null = null;
  private readonly heldChunks: { upstream: Socket; chunk: Buffer }[] = [];
  private holding = false;

  private constructor(
    readonly port: number,
    private targetPort: number,
  ) {}

  /**
   * New connections go to `port` from now on, and open ones are dropped: what a failover's address
   * flip (a DNS name, a virtual IP, a pooler's target) does to its clients.
   */
  retarget(port: number): void {
    this.targetPort = port;
    for (const s of this.sockets) s.destroy();
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), targetPort);
    await proxy.restore();
    return proxy;
  }

  async restore(): Promise<void> {
    if (this.server) return;
    this.server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      upstream.pipe(client);
      client.on('data', (chunk: Buffer) => {
        if (!this.holding && this.hold?.pattern.test(chunk.toString('latin1'))) {
          this.holding = true;
          this.hold.held();
          this.hold = null;
        }
        if (this.holding) this.heldChunks.push({ upstream, chunk });
        else upstream.write(chunk);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
  }

  /** Resolves once a chunk a client sends matches `pattern`; it and all that follows wait for `release`. */
  holdNext(pattern: RegExp): Promise<void> {
    return new Promise((held) => (this.hold = { pattern, held }));
  }

  /** Sends everything held, in order, and forwards as usual again. */
  release(): void {
    this.holding = false;
    for (const { upstream, chunk } of this.heldChunks.splice(0)) upstream.write(chunk);
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
