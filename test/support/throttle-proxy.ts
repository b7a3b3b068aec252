import { createConnection, createServer, Server, Socket } from 'node:net';
import { once } from 'node:events';

/**
 * A TCP proxy in front of a local server (an S3 test server) that slows both directions to `rate` bytes a second
 * while throttled, and counts the bytes the server sent to its clients: a slow link to a store or a file source,
 * with no change to either. `rate = Infinity` passes at full speed.
 */
export class ThrottleProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;
  /** bytes from the server to the clients, since the start or the last `mark()` */
  served = 0;

  constructor(
    private readonly targetPort: number,
    public rate: number,
  ) {
    this.server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      this.relay(client, upstream, false);
      this.relay(upstream, client, true);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  mark(): void {
    this.served = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private relay(from: Socket, to: Socket, counts: boolean): void {
    from.on('data', (chunk: Buffer) => {
      if (counts) this.served += chunk.length;
      const flushed = to.write(chunk);
      const wait = Number.isFinite(this.rate) ? (chunk.length / this.rate) * 1000 : 0;
      if (wait > 1 || !flushed) {
        from.pause();
        const resume = () => setTimeout(() => from.resume(), wait);
        if (flushed) resume();
        else to.once('drain', resume);
      }
    });
    from.on('end', () => to.end());
  }
}
