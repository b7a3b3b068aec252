import { createReadStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';

/**
 * The tests' own image server (no mocks): files served from memory or disk with
 *   ranges=0            no Accept-Ranges, Range ignored (200 with the whole file)
 *   length=0            no Content-Length (chunked)
 *   validators=0        no ETag / Last-Modified (a drop cannot be resumed safely: restart)
 *   rate=<bytes/s>      slow: the body trickles at that rate (the first `slowTimes` requests of `id`, default all)
 *   dropAfter=<n>       the connection is cut after n body bytes (the first `times` requests of `id`, default 1)
 *   type=<mime>         Content-Type
 * and the routes  /redirect?n=<hops>&to=<path>,  /status?code=<n>,  /huge (declares 10 TB, sends 10 bytes).
 * `GET /f/<name>?...` serves what `put(name, ...)` registered; putting a name again is a new version of the file
 * (another ETag and Last-Modified). Each request records the body bytes it sent (`bytes`, `bytesServed`).
 */
/** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export interface ServedFile {
  size: number;
  /** 1, then 2 once the name is put again, ... */
  version: number;
  open: (start: number, end: number) => Readable;
}

export class ImageServer {
  readonly server: Server;
  port = 0;
  /** every request, with when it arrived (Date.now()) */
  readonly requests: { path: string; headers: IncomingMessage['headers']; at: number; bytes: number }[] = [];
  private readonly files = new Map<string, ServedFile>();
  private readonly counters = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  /** bodies being sent right now, by path */
  private readonly sending = new Map<string, number>();

  constructor(private readonly host = '127.0.0.1') {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, this.host);
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://${this.host}:${this.port}${path}`;
  }

  /** Serves `data` (a buffer, or a file on disk) at /f/<name>. */
  put(name: string, data: Buffer | { path: string }): string {
    const version = (this.files.get(name)?.version ?? 0) + 1;
    if (Buffer.isBuffer(data)) {
      this.files.set(name, { size: data.length, version, open: (s, e) => Readable.from([data.subarray(s, e + 1)]) });
    } else {
      const size = statSync(data.path).size;
      this.files.set(name, { size, version, open: (s, e) => createReadStream(data.path, { start: s, end: e, highWaterMark: 256 * 1024 }) });
    }
    return `/f/${name}`;
  }

  /** Body bytes sent by the requests whose path contains `pathPart`, that arrived at or after `since` (Date.now()). */
  bytesServed(pathPart: string, since = 0): number {
    return this.requests.filter((r) => r.at >= since && r.path.includes(pathPart)).reduce((n, r) => n + r.bytes, 0);
  }

  hits(pathPrefix: string): number {
    return this.requests.filter((r) => r.path.startsWith(pathPrefix)).length;
  }

  /** How many responses under `pathPrefix` are still sending their body (a stopped download closes its connection). */
  inFlight(pathPrefix: string): number {
    let n = 0;
    for (const [p, c] of this.sending) if (p.startsWith(pathPrefix)) n += c;
    return n;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private count(id: string): number {
    const n = (this.counters.get(id) ?? 0) + 1;
    this.counters.set(id, n);
    return n;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const q = u.searchParams;
    const entry = { path: u.pathname + u.search, headers: req.headers, at: Date.now(), bytes: 0 };
    this.requests.push(entry);
    if (u.pathname === '/redirect') {
      const n = Number(q.get('n') ?? 1);
      res.writeHead(302, { location: n > 1 ? `/redirect?n=${n - 1}&to=${encodeURIComponent(q.get('to') ?? '/')}` : (q.get('to') ?? '/') });
      return void res.end();
    }
    if (u.pathname === '/status') {
      res.writeHead(Number(q.get('code') ?? 500));
      return void res.end('status');
    }
    if (u.pathname === '/huge') {
      res.writeHead(200, { 'content-length': String(10 ** 13), 'accept-ranges': 'bytes' });
      res.write(Buffer.alloc(10));
      return; // the client must hang up
    }
    const file = u.pathname.startsWith('/f/') ? this.files.get(decodeURIComponent(u.pathname.slice(3))) : undefined;
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return void res.end('not found');
    }
    const flag = (k: string) => q.get(k) !== '0';
    const id = q.get('id') ?? u.pathname;
    const n = this.count(id);
    const ranges = flag('ranges');
    const headers: Record<string, string> = { 'content-type': q.get('type') ?? 'application/octet-stream' };
    if (ranges) headers['accept-ranges'] = 'bytes';
    if (flag('validators')) {
      headers.etag = `"${u.pathname}-v${file.version}"`;
      headers['last-modified'] = new Date(Date.parse('2026-01-02T03:04:05Z') + (file.version - 1) * 1000).toUTCString();
    }
    let start = 0;
    let end = file.size - 1;
    let status = 200;
    const m = ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null;
    const ifRange = req.headers['if-range'];
    if (m && (!ifRange || ifRange === headers.etag || ifRange === headers['last-modified'])) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      if (start >= file.size) {
        res.writeHead(416, { 'content-range': `bytes */${file.size}` });
        return void res.end();
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${file.size}`;
    }
    if (flag('length')) headers['content-length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();

    const slow = q.has('rate') && n <= Number(q.get('slowTimes') ?? Infinity);
    const rate = slow ? Number(q.get('rate')) : Infinity;
    const dropAfter = q.has('dropAfter') && n <= Number(q.get('times') ?? 1) ? Number(q.get('dropAfter')) : Infinity;
    this.sending.set(u.pathname, (this.sending.get(u.pathname) ?? 0) + 1);
    try {
      await this.send(file.open(start, end), res, rate, dropAfter, entry);
    } finally {
      this.sending.set(u.pathname, this.sending.get(u.pathname)! - 1);
    }
  }

  /** Writes the body with backpressure, at most `rate` bytes a second, cutting the connection after `dropAfter` bytes. */
  private async send(src: Readable, res: ServerResponse, rate: number, dropAfter: number, entry: { bytes: number }): Promise<void> {
    const t0 = Date.now();
    let sent = 0;
    const closed = () => res.destroyed || res.socket?.destroyed === true;
    try {
      for await (const c of src) {
        let chunk = c as Buffer;
        while (chunk.length) {
          if (closed()) return;
          const piece = chunk.subarray(0, Number.isFinite(rate) ? Math.max(1024, Math.floor(rate / 20)) : chunk.length);
          chunk = chunk.subarray(piece.length);
          if (sent + piece.length > dropAfter) {
            res.write(piece.subarray(0, dropAfter - sent));
            entry.bytes += dropAfter - sent;
            await new Promise((r) => setTimeout(r, 20));
            res.socket?.destroy();
            return;
          }
          sent += piece.length;
          entry.bytes += piece.length;
          if (!res.write(piece)) await drained(res);
          if (Number.isFinite(rate)) {
            const due = t0 + (sent / rate) * 1000;
            if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
          }
        }
      }
      res.end();
    } finally {
      src.destroy();
    }
  }
}
