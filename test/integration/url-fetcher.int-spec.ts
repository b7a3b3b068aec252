import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, createServer as createTcpServer, Server as TcpServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../../src/config/app-config';
import { FormatCheckStream, storageRangeReader, verifyStored } from '../../src/ingestion/format-sniffer';
import { HashingStream } from '../../src/ingestion/hashing';
import { IngestError } from '../../src/ingestion/ingestion.errors';
import { downloadOptionsFrom, DownloadEvent, resumableDownload, ResumableDownloadOptions } from '../../src/ingestion/sources/resumable-download';
import { FetchSettings, UrlFetcher } from '../../src/ingestion/sources/url-fetcher';
import { UrlPolicy, UrlPolicySettings } from '../../src/ingestion/sources/url-policy';
import { FsStorage } from '../../src/storage/fs-storage';

const MiB = 1024 * 1024;
const FILE = Buffer.alloc(3 * MiB + 333);
for (let i = 0, n = 42; i + 4 <= FILE.length; i += 4) {
  n = (Math.imul(n, 1103515245) + 12345) >>> 0;
  FILE.writeUInt32LE(n, i);
}
const FILE_SHA = createHash('sha256').update(FILE).digest('hex');
const ETAG = '"file-v1"';
const LAST_MODIFIED = new Date('2026-01-02T03:04:05Z').toUTCString();

/** A qcow2 header naming a backing file: the "wrong content" an image server could hand us. */
function qcow2WithBacking(): Buffer {
  const b = Buffer.alloc(256 * 1024);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(2, 4);
  b.writeBigUInt64BE(512n, 8);
  b.writeUInt32BE(11, 16);
  b.write('/etc/shadow', 512);
  return b;
}

interface ServeOpts {
  ranges?: boolean;
  length?: boolean;
  validators?: boolean;
  etag?: string;
  dropAfter?: number;
  stallAfter?: number;
  data?: Buffer;
}

/** The test's own image server: Range on/off, no Content-Length, drops, stalls, redirects, lies. */
class TestServer {
  server: Server;
  port = 0;
  host: string;
  requests: { path: string; headers: IncomingMessage['headers'] }[] = [];
  private counters = new Map<string, number>();
  private sockets = new Set<Socket>();
  closedSockets = 0;

  constructor(host = '127.0.0.1') {
    this.host = host;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => {
        this.sockets.delete(s);
        this.closedSockets++;
      });
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

  hits(pathPrefix: string): number {
    return this.requests.filter((r) => r.path.startsWith(pathPrefix)).length;
  }

  /** how many times this id was asked for so far (1 on the first request) */
  private count(id: string): number {
    const n = (this.counters.get(id) ?? 0) + 1;
    this.counters.set(id, n);
    return n;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const q = u.searchParams;
    this.requests.push({ path: u.pathname + u.search, headers: req.headers });
    const flag = (k: string, d = true) => (q.has(k) ? q.get(k) !== '0' : d);
    const base: ServeOpts = { ranges: flag('ranges'), length: flag('length'), validators: flag('validators') };
    switch (u.pathname) {
      case '/file':
        return this.serve(req, res, base);
      case '/qcow2':
        return this.serve(req, res, { ...base, data: qcow2WithBacking() });
      case '/drop': {
        // the first `times` requests of this id drop after `after` bytes
        const n = this.count(`drop:${q.get('id')}`);
        const drop = n <= Number(q.get('times') ?? 1);
        return this.serve(req, res, { ...base, dropAfter: drop ? Number(q.get('after')) : undefined });
      }
      case '/stall': {
        const n = this.count(`stall:${q.get('id')}`);
        return this.serve(req, res, { ...base, stallAfter: n === 1 ? Number(q.get('after')) : undefined });
      }
      case '/changing': {
        // the file changes between the first request and the resume
        const n = this.count(`changing:${q.get('id')}`);
        return this.serve(req, res, { ...base, etag: n === 1 ? ETAG : '"file-v2"', dropAfter: n === 1 ? 100_000 : undefined });
      }
      case '/flaky': {
        const n = this.count(`flaky:${q.get('id')}`);
        if (n <= Number(q.get('fail') ?? 0)) {
          res.writeHead(Number(q.get('code') ?? 503));
          return void res.end('busy');
        }
        return this.serve(req, res, base);
      }
      case '/no-headers':
        return; // never answers
      case '/redirect': {
        const n = Number(q.get('n'));
        res.writeHead(302, { location: n > 0 ? `/redirect?n=${n - 1}` : '/file' });
        return void res.end();
      }
      case '/to':
        res.writeHead(Number(q.get('code') ?? 302), { location: q.get('url') ?? '/' });
        return void res.end();
      case '/huge':
        res.writeHead(200, { 'content-length': String(10 ** 13), 'accept-ranges': 'bytes' });
        res.write(Buffer.alloc(10));
        return; // keeps the connection open: the client must hang up
      case '/status':
        res.writeHead(Number(q.get('code')));
        return void res.end('no');
      default:
        res.writeHead(404);
        res.end();
    }
  }

  private async serve(req: IncomingMessage, res: ServerResponse, o: ServeOpts): Promise<void> {
    const data = o.data ?? FILE;
    const etag = o.etag ?? ETAG;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (o.validators) Object.assign(headers, { etag, 'last-modified': LAST_MODIFIED });
    if (o.ranges) headers['accept-ranges'] = 'bytes';
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (o.ranges && m && (!ifRange || ifRange === etag || ifRange === LAST_MODIFIED)) {
      start = Number(m[1]);
      if (start >= data.length) {
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        return void res.end();
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    if (o.length) headers['content-length'] = String(data.length - start);
    res.writeHead(status, headers);
    let sent = 0;
    for (let at = start; at < data.length; at += 64 * 1024) {
      let chunk = data.subarray(at, Math.min(data.length, at + 64 * 1024));
      const limit = o.dropAfter ?? o.stallAfter;
      if (limit !== undefined && sent + chunk.length >= limit) {
        chunk = chunk.subarray(0, limit - sent);
        res.write(chunk);
        if (o.stallAfter !== undefined) return; // stays silent, connection open
        await new Promise((r) => setTimeout(r, 50));
        return void req.socket.destroy(); // connection lost mid-body
      }
      sent += chunk.length;
      if (!res.write(chunk)) await once(res, 'drain');
    }
    res.end();
  }
}

const settings: FetchSettings = { connectTimeoutMs: 2000, idleTimeoutMs: 2000, maxRedirects: 3, maxSize: 10 * MiB };
const policySettings = (over: Partial<UrlPolicySettings> = {}): UrlPolicySettings => ({
  allowCidrs: ['127.0.0.1/32'],
  denyCidrs: [],
  allowHosts: [],
  denyHosts: [],
  denyPrivate: false,
  ...over,
});
const fetcherWith = (over: Partial<UrlPolicySettings> = {}, s: Partial<FetchSettings> = {}) =>
  new UrlFetcher(new UrlPolicy(policySettings(over)), { ...settings, ...s });

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('UrlFetcher against a real HTTP server', () => {
  let srv: TestServer;
  let fetcher: UrlFetcher;
  beforeAll(async () => {
    srv = await new TestServer().start();
    fetcher = fetcherWith();
  });
  afterAll(() => srv.close());

  it('streams a file, reporting size, range support and validators', async () => {
    const r = await fetcher.fetch(srv.url('/file'));
    expect(r).toMatchObject({
      status: 200,
      offset: 0,
      totalSize: FILE.length,
      contentLength: FILE.length,
      acceptsRanges: true,
      etag: ETAG,
      lastModified: LAST_MODIFIED,
      remoteAddress: '127.0.0.1',
      redirects: 0,
    });
    expect(r.finalUrl).toBe(srv.url('/file'));
    expect((await readAll(r.body)).equals(FILE)).toBe(true);
  });

  it('streams a body sent without Content-Length', async () => {
    const r = await fetcher.fetch(srv.url('/file?length=0'));
    expect(r.contentLength).toBeUndefined();
    expect(r.totalSize).toBeUndefined();
    expect((await readAll(r.body)).equals(FILE)).toBe(true);
  });

  it('asks for a range from an offset and says whether the server honoured it', async () => {
    const on = await fetcher.fetch(srv.url('/file'), { offset: 1_000_000, ifRange: ETAG });
    expect(on).toMatchObject({ status: 206, offset: 1_000_000, totalSize: FILE.length, contentLength: FILE.length - 1_000_000 });
    expect((await readAll(on.body)).equals(FILE.subarray(1_000_000))).toBe(true);
    expect(srv.requests[srv.requests.length - 1].headers).toMatchObject({ range: 'bytes=1000000-', 'if-range': ETAG });

    const off = await fetcher.fetch(srv.url('/file?ranges=0'), { offset: 1_000_000 });
    expect(off).toMatchObject({ status: 200, offset: 0, acceptsRanges: false, totalSize: FILE.length });
    off.body.destroy();

    await expect(fetcher.fetch(srv.url('/file'), { offset: FILE.length })).rejects.toMatchObject({
      code: 'RANGE_NOT_SATISFIABLE',
      details: { totalSize: FILE.length },
    });
  });

  it('probes with HEAD without reading a body', async () => {
    const info = await fetcher.probe(srv.url('/redirect?n=1'));
    expect(info).toMatchObject({ status: 200, totalSize: FILE.length, acceptsRanges: true, etag: ETAG, redirects: 2 });
    expect(srv.requests[srv.requests.length - 1]).toMatchObject({ path: '/file' });
  });

  it('times out a server that never answers, and one that goes quiet mid-body', async () => {
    const f = fetcherWith({}, { idleTimeoutMs: 300 });
    const t0 = Date.now();
    await expect(f.fetch(srv.url('/no-headers'))).rejects.toMatchObject({ code: 'IDLE_TIMEOUT', retryable: true });
    expect(Date.now() - t0).toBeLessThan(2000);
    const r = await f.fetch(srv.url('/stall?id=t1&after=100000'));
    await expect(readAll(r.body)).rejects.toMatchObject({ code: 'IDLE_TIMEOUT' });
  });

  it('does not take a slow consumer for an idle server', async () => {
    const f = fetcherWith({}, { idleTimeoutMs: 300 });
    const r = await f.fetch(srv.url('/file'));
    const parts: Buffer[] = [];
    for await (const c of r.body) {
      parts.push(c as Buffer);
      if (parts.length === 2) await new Promise((res) => setTimeout(res, 800)); // the socket pauses meanwhile
    }
    expect(Buffer.concat(parts).equals(FILE)).toBe(true);
  });

  it('times out a connection whose TLS handshake never completes', async () => {
    const silent: TcpServer = createTcpServer(() => undefined);
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const port = (silent.address() as AddressInfo).port;
    try {
      const f = fetcherWith({}, { connectTimeoutMs: 300, idleTimeoutMs: 5000 });
      await expect(f.fetch(`https://127.0.0.1:${port}/x`)).rejects.toMatchObject({ code: 'CONNECT_TIMEOUT', retryable: true });
    } finally {
      silent.close();
    }
  });

  it('reports a refused connection as retryable', async () => {
    const tmp = createTcpServer();
    tmp.listen(0, '127.0.0.1');
    await once(tmp, 'listening');
    const port = (tmp.address() as AddressInfo).port;
    await new Promise((r) => tmp.close(r));
    await expect(fetcher.fetch(`http://127.0.0.1:${port}/`)).rejects.toMatchObject({ code: 'CONNECT_FAILED', retryable: true });
  });

  it('follows a redirect chain up to the limit and refuses a longer one', async () => {
    const ok = await fetcher.fetch(srv.url('/redirect?n=2'));
    expect(ok).toMatchObject({ status: 200, redirects: 3, finalUrl: srv.url('/file') });
    ok.body.destroy();
    await expect(fetcher.fetch(srv.url('/redirect?n=3'))).rejects.toMatchObject({ code: 'TOO_MANY_REDIRECTS' });
    await expect(fetcherWith({}, { maxRedirects: 0 }).fetch(srv.url('/redirect?n=0'))).rejects.toMatchObject({ code: 'TOO_MANY_REDIRECTS' });
  });

  it('refuses a redirect to a denied address without connecting to it', async () => {
    // a second server on another loopback address that is not on the allow list
    const other = await new TestServer('127.0.0.2').start();
    try {
      const target = other.url('/file');
      await expect(fetcher.fetch(srv.url(`/to?url=${encodeURIComponent(target)}`))).rejects.toMatchObject({ code: 'URL_ADDRESS_DENIED' });
      await expect(fetcher.fetch(srv.url(`/to?code=307&url=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`))).rejects.toMatchObject({
        code: 'URL_ADDRESS_DENIED',
        message: expect.stringContaining('cloud metadata'),
      });
      await expect(fetcher.fetch(srv.url(`/to?url=${encodeURIComponent('http://[::ffff:169.254.169.254]/')}`))).rejects.toMatchObject({
        code: 'URL_ADDRESS_DENIED',
      });
      await expect(fetcher.fetch(srv.url(`/to?url=${encodeURIComponent('file:///etc/passwd')}`))).rejects.toMatchObject({ code: 'URL_SCHEME_NOT_ALLOWED' });
      expect(other.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('refuses a host name that resolves to a denied address, checked after DNS', async () => {
    const before = srv.requests.length;
    // loopback is denied by default: "localhost" passes the URL check (a name) but not the lookup
    const strict = fetcherWith({ allowCidrs: [] });
    await expect(strict.fetch(srv.url('/file').replace('127.0.0.1', 'localhost'))).rejects.toMatchObject({
      code: 'URL_ADDRESS_DENIED',
      message: expect.stringContaining('localhost resolves to it'),
    });
    await expect(strict.fetch(srv.url('/file'))).rejects.toMatchObject({ code: 'URL_ADDRESS_DENIED' });
    // an explicit deny wins over an explicit allow
    const denyWins = fetcherWith({ allowCidrs: ['127.0.0.0/8'], denyCidrs: ['127.0.0.1/32'] });
    await expect(denyWins.fetch(srv.url('/file').replace('127.0.0.1', 'localhost'))).rejects.toMatchObject({ code: 'URL_ADDRESS_DENIED' });
    // and a denied host name is refused before any lookup
    await expect(fetcherWith({ denyHosts: ['localhost'] }).fetch(srv.url('/file').replace('127.0.0.1', 'localhost'))).rejects.toMatchObject({
      code: 'URL_HOST_DENIED',
    });
    expect(srv.requests.length).toBe(before);
    // with the allow list, the same name is fine
    const ok = await fetcher.fetch(srv.url('/file').replace('127.0.0.1', 'localhost'));
    expect(ok.remoteAddress).toBe('127.0.0.1');
    ok.body.destroy();
  });

  it('refuses a declared size above the maximum before reading the body', async () => {
    const closedBefore = srv.closedSockets;
    await expect(fetcher.fetch(srv.url('/huge'))).rejects.toMatchObject({ code: 'TOO_LARGE', retryable: false, details: { size: 10 ** 13 } });
    // the client hung up on the open connection
    for (let i = 0; i < 50 && srv.closedSockets === closedBefore; i++) await new Promise((r) => setTimeout(r, 20));
    expect(srv.closedSockets).toBeGreaterThan(closedBefore);
    // a body without a declared size is cut when it grows past the maximum
    const small = fetcherWith({}, { maxSize: MiB });
    const r = await small.fetch(srv.url('/file?length=0'));
    await expect(readAll(r.body)).rejects.toMatchObject({ code: 'TOO_LARGE' });
  });

  it('reports HTTP errors with their status, retryable only where trying again may help', async () => {
    await expect(fetcher.fetch(srv.url('/status?code=404'))).rejects.toMatchObject({ code: 'HTTP_STATUS', retryable: false, details: { status: 404 } });
    await expect(fetcher.fetch(srv.url('/status?code=403'))).rejects.toMatchObject({ retryable: false });
    await expect(fetcher.fetch(srv.url('/status?code=503'))).rejects.toMatchObject({ code: 'HTTP_STATUS', retryable: true });
  });

  it('refuses URLs with credentials or other schemes without any request', async () => {
    const before = srv.requests.length;
    await expect(fetcher.fetch(`http://u:p@127.0.0.1:${srv.port}/file`)).rejects.toMatchObject({ code: 'URL_CREDENTIALS_NOT_ALLOWED' });
    await expect(fetcher.fetch(`ftp://127.0.0.1:${srv.port}/file`)).rejects.toMatchObject({ code: 'URL_SCHEME_NOT_ALLOWED' });
    expect(srv.requests.length).toBe(before);
  });

  it('reports a connection lost mid-body as a retryable drop, and stops on abort', async () => {
    const r = await fetcher.fetch(srv.url('/drop?id=plain&after=500000'));
    await expect(readAll(r.body)).rejects.toMatchObject({ code: 'CONNECTION_DROPPED', retryable: true });
    const ac = new AbortController();
    const r2 = await fetcher.fetch(srv.url('/stall?id=abort&after=100000'), { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(readAll(r2.body)).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('resumableDownload', () => {
  let srv: TestServer;
  const fetcher = fetcherWith({}, { idleTimeoutMs: 500 });
  const opts = (events: DownloadEvent[], over: Partial<ResumableDownloadOptions> = {}): ResumableDownloadOptions => ({
    maxAttempts: 4,
    retryBaseDelayMs: 10,
    onEvent: (e) => events.push(e),
    ...over,
  });
  beforeAll(async () => {
    srv = await new TestServer().start();
  });
  afterAll(() => srv.close());

  /** consumer: collect the body; record each run */
  const collect = (runs: { run: number; error?: IngestError; bytes: number }[]) => async (body: Readable, start: { run: number }) => {
    const parts: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const c of body) {
        parts.push(c as Buffer);
        bytes += (c as Buffer).length;
      }
    } catch (e) {
      runs.push({ run: start.run, error: e as IngestError, bytes });
      throw e;
    }
    runs.push({ run: start.run, bytes });
    return Buffer.concat(parts);
  };

  it('resumes a dropped connection with a Range request, invisibly to the consumer', async () => {
    const events: DownloadEvent[] = [];
    const runs: { run: number; bytes: number }[] = [];
    const data = await resumableDownload(fetcher, srv.url('/drop?id=r1&after=1000000&times=2'), opts(events), collect(runs));
    expect(createHash('sha256').update(data).digest('hex')).toBe(FILE_SHA);
    expect(runs).toEqual([{ run: 1, bytes: FILE.length }]);
    expect(events.map((e) => e.type)).toEqual(['retry', 'resumed', 'retry', 'resumed']);
    expect(events[1]).toEqual({ type: 'resumed', offset: 1_000_000 });
    const ranged = srv.requests.filter((r) => r.path.startsWith('/drop?id=r1') && r.headers.range);
    expect(ranged.map((r) => r.headers.range)).toEqual(['bytes=1000000-', 'bytes=2000000-']);
    expect(ranged[0].headers['if-range']).toBe(ETAG);
  });

  it('resumes after the server goes quiet mid-body', async () => {
    const events: DownloadEvent[] = [];
    const data = await resumableDownload(fetcher, srv.url('/stall?id=r2&after=700000'), opts(events), collect([]));
    expect(data.equals(FILE)).toBe(true);
    expect(events).toEqual([
      expect.objectContaining({ type: 'retry', error: expect.objectContaining({ code: 'IDLE_TIMEOUT' }), willResume: true, receivedBytes: 700_000 }),
      { type: 'resumed', offset: 700_000 },
    ]);
  });

  it('restarts cleanly from byte 0 when the server does not support Range', async () => {
    const events: DownloadEvent[] = [];
    const runs: { run: number; error?: IngestError; bytes: number }[] = [];
    const data = await resumableDownload(fetcher, srv.url('/drop?id=r3&after=800000&ranges=0'), opts(events), collect(runs));
    expect(data.equals(FILE)).toBe(true);
    expect(runs).toEqual([
      { run: 1, bytes: 800_000, error: expect.objectContaining({ code: 'RESTART_REQUIRED' }) },
      { run: 2, bytes: FILE.length },
    ]);
    expect(events).toEqual([
      expect.objectContaining({ type: 'retry', willResume: false }),
      { type: 'restart', reason: 'the server does not support Range requests', discardedBytes: 800_000 },
    ]);
    expect(srv.requests.filter((r) => r.path.startsWith('/drop?id=r3')).every((r) => !r.headers.range)).toBe(true);
  });

  it('from: the download of a crashed run goes on from its offset when the file is the same (Range + If-Range)', async () => {
    const starts: { offset: number; resumeRefused?: string }[] = [];
    const data = await resumableDownload(
      fetcher,
      srv.url('/file?id=from1'),
      { ...opts([]), from: { offset: 1_500_000, etag: ETAG, lastModified: LAST_MODIFIED, totalSize: FILE.length } },
      async (body, start) => {
        starts.push({ offset: start.offset, resumeRefused: start.resumeRefused });
        return collect([])(body, start);
      },
    );
    expect(starts).toEqual([{ offset: 1_500_000, resumeRefused: undefined }]);
    expect(data.equals(FILE.subarray(1_500_000))).toBe(true);
    const asked = srv.requests.filter((r) => r.path === '/file?id=from1');
    expect(asked.map((r) => [r.headers.range, r.headers['if-range']])).toEqual([['bytes=1500000-', ETAG]]);
  });

  it('from: another ETag, another size or no range support start from byte 0 and say why', async () => {
    const run = async (url: string, from: { offset: number; etag?: string; totalSize?: number }) => {
      const starts: { offset: number; resumeRefused?: string }[] = [];
      const data = await resumableDownload(fetcher, srv.url(url), { ...opts([]), from }, async (body, start) => {
        starts.push({ offset: start.offset, resumeRefused: start.resumeRefused });
        return collect([])(body, start);
      });
      expect(data.equals(FILE)).toBe(true);
      return starts;
    };
    // If-Range with an old ETag: the server sends the whole (new) file, used as a fresh start
    expect(await run('/file?id=from2', { offset: 1000, etag: '"file-v0"' })).toEqual([{ offset: 0, resumeRefused: expect.stringContaining('changed') }]);
    // the same ETag but another size: refused, then a request from 0
    expect(await run('/file?id=from3', { offset: 1000, etag: ETAG, totalSize: FILE.length + 1 })).toEqual([
      { offset: 0, resumeRefused: expect.stringContaining('changed') },
    ]);
    // no ranges: the 200 is the file from 0
    expect(await run('/file?id=from4&ranges=0', { offset: 1000, etag: ETAG })).toEqual([{ offset: 0, resumeRefused: expect.stringContaining('ranges') }]);
    // nothing recorded to check the file against: not even asked with a range
    expect(await run('/file?id=from5', { offset: 1000 })).toEqual([{ offset: 0, resumeRefused: expect.stringContaining('no validator') }]);
    expect(srv.requests.filter((r) => r.path === '/file?id=from5').every((r) => !r.headers.range)).toBe(true);
  });

  it('restarts when there is no validator to resume safely, or the file changed', async () => {
    const e1: DownloadEvent[] = [];
    expect((await resumableDownload(fetcher, srv.url('/drop?id=r4&after=300000&validators=0'), opts(e1), collect([]))).equals(FILE)).toBe(true);
    expect(e1.find((e) => e.type === 'restart')).toMatchObject({ reason: expect.stringContaining('no validator') });

    const e2: DownloadEvent[] = [];
    const runs: { run: number; bytes: number }[] = [];
    const data = await resumableDownload(fetcher, srv.url('/changing?id=r5'), opts(e2), collect(runs));
    expect(data.equals(FILE)).toBe(true);
    expect(runs.map((r) => r.run)).toEqual([1, 2]);
    expect(e2.find((e) => e.type === 'restart')).toMatchObject({ reason: 'the server answered 200 to a Range request' });
  });

  it('retries a busy server with backoff, and gives up after the attempts allowed', async () => {
    const events: DownloadEvent[] = [];
    const data = await resumableDownload(fetcher, srv.url('/flaky?id=f1&fail=2'), opts(events), collect([]));
    expect(data.equals(FILE)).toBe(true);
    expect(events.map((e) => e.type)).toEqual(['retry', 'retry']);
    expect(events.map((e) => (e.type === 'retry' ? e.delayMs : 0))).toEqual([expect.any(Number), expect.any(Number)]);

    let consumed = 0;
    const consume = async () => {
      consumed++;
      return 'never';
    };
    await expect(resumableDownload(fetcher, srv.url('/flaky?id=f2&fail=99'), opts([], { maxAttempts: 3 }), consume)).rejects.toMatchObject({
      code: 'ATTEMPTS_EXHAUSTED',
      details: { lastCode: 'HTTP_STATUS', attempts: 3 },
    });
    expect(srv.hits('/flaky?id=f2')).toBe(3);
    expect(consumed).toBe(0);
  });

  it('gives up at once on what retrying cannot fix', async () => {
    await expect(resumableDownload(fetcher, srv.url('/flaky?id=f3&fail=99&code=404'), opts([]), collect([]))).rejects.toMatchObject({ code: 'HTTP_STATUS' });
    expect(srv.hits('/flaky?id=f3')).toBe(1);
    await expect(resumableDownload(fetcher, 'http://169.254.169.254/latest/meta-data/', opts([]), collect([]))).rejects.toMatchObject({
      code: 'URL_ADDRESS_DENIED',
    });
  });

  it('gives up when drops keep coming without progress', async () => {
    const events: DownloadEvent[] = [];
    await expect(
      resumableDownload(fetcher, srv.url('/drop?id=r6&after=10&times=99'), opts(events, { maxAttempts: 3, progressResetBytes: MiB }), collect([])),
    ).rejects.toMatchObject({ code: 'ATTEMPTS_EXHAUSTED', details: { lastCode: 'CONNECTION_DROPPED' } });
  });

  it('is configured from the service settings', async () => {
    const config = loadConfig({
      AUTH_JWT_SECRET: 'x'.repeat(32),
      DATA_DIR: join(tmpdir(), 'hcm-url-config'),
      URL_ALLOW_CIDRS: '127.0.0.1/32',
      URL_MAX_ATTEMPTS: '2',
      URL_RETRY_BASE_DELAY_MS: '5',
      INGEST_MAX_SIZE_BYTES: String(FILE.length),
    });
    const f = UrlFetcher.fromConfig(config);
    expect(f.settings).toEqual({ connectTimeoutMs: 10_000, idleTimeoutMs: 30_000, maxRedirects: 5, maxSize: FILE.length });
    const o = downloadOptionsFrom(config);
    expect(o).toEqual({ maxAttempts: 2, retryBaseDelayMs: 5, maxSize: FILE.length });
    expect((await resumableDownload(f, srv.url('/flaky?id=cfg&fail=1'), o, collect([]))).equals(FILE)).toBe(true);
    await expect(resumableDownload(f, srv.url('/flaky?id=cfg2&fail=2'), o, collect([]))).rejects.toMatchObject({ code: 'ATTEMPTS_EXHAUSTED' });
    // a per-download maximum (e.g. the quota left) overrides the configured one
    await expect(resumableDownload(f, srv.url('/file'), { ...o, maxSize: FILE.length - 1 }, collect([]))).rejects.toMatchObject({ code: 'TOO_LARGE' });
  });

  it('lets the consumer check the declared size before the first byte, and stops when it refuses', async () => {
    const seen: (number | undefined)[] = [];
    await expect(
      resumableDownload(fetcher, srv.url('/file'), opts([]), async (body, start) => {
        seen.push(start.totalSize);
        throw new Error('QUOTA_EXCEEDED');
      }),
    ).rejects.toThrow('QUOTA_EXCEEDED');
    expect(seen).toEqual([FILE.length]);
  });

  describe('as the source of a storage pipeline (hash, format check, put)', () => {
    let root: string;
    let storage: FsStorage;
    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'hcm-url-pipeline-'));
      storage = new FsStorage(root);
      await storage.init();
    });
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    const ingest = (url: string, declared: 'raw' | 'qcow2', key: string, events: DownloadEvent[] = []) =>
      resumableDownload(fetcher, url, opts(events), async (body) => {
        const hash = new HashingStream({ md5: true });
        const check = new FormatCheckStream(declared);
        // pipeline forwards any error to every stage, so the put fails (and cleans up) with the first one
        const [{ size }] = await Promise.all([storage.putStream(key, check), pipeline(body, hash, check)]);
        return { ...hash.digests!, size };
      });

    it('stores a file intact across a restart, with its checksums', async () => {
      const events: DownloadEvent[] = [];
      const r = await ingest(srv.url('/drop?id=p1&after=1500000&ranges=0'), 'raw', 'images/p1/disk', events);
      expect(r).toEqual({ size: FILE.length, sha256: FILE_SHA, md5: createHash('md5').update(FILE).digest('hex') });
      expect(events.some((e) => e.type === 'restart')).toBe(true);
      expect((await storage.stat('images/p1/disk')).size).toBe(FILE.length);
      expect(await storage.listIncomplete('images/')).toEqual([]);
      // the checks needing random access run on the stored object (a raw file has none; a "vhd" fails)
      const read = storageRangeReader(storage, 'images/p1/disk');
      expect(await verifyStored('raw', r.size, read)).toEqual({ ok: true, detected: 'unknown' });
      expect(await verifyStored('vhd', r.size, read)).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH' });
      expect(await verifyStored('vhdx', r.size, read)).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
    });

    it('refuses wrong content (a qcow2 with a backing file) and stores nothing', async () => {
      await expect(ingest(srv.url('/qcow2'), 'qcow2', 'images/p2/disk')).rejects.toMatchObject({ code: 'FORMAT_UNSAFE' });
      await expect(ingest(srv.url('/qcow2'), 'raw', 'images/p3/disk')).rejects.toMatchObject({ code: 'FORMAT_UNSAFE' });
      await expect(ingest(srv.url('/file'), 'qcow2', 'images/p4/disk')).rejects.toMatchObject({ code: 'FORMAT_MISMATCH' });
      for (const k of ['p2', 'p3', 'p4']) expect(await storage.exists(`images/${k}/disk`)).toBe(false);
      expect(await storage.listIncomplete('images/')).toEqual([]);
    });
  });
});
