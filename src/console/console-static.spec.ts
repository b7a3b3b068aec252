import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import express from 'express';
import { consoleHandler, IMMUTABLE, pickEncoding } from './console-static';

describe('pickEncoding', () => {
  const offered = ['br', 'gzip'];
  it.each([
    ['gzip, deflate, br, zstd', 'br'],
    ['gzip', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['br;q=0, gzip;q=0', 'identity'],
    ['*', 'br'],
    ['*;q=0.5, br;q=0', 'gzip'],
    ['identity', 'identity'],
    ['', 'identity'],
    [undefined, 'identity'],
    ['BR', 'br'],
    ['br;q=abc, gzip', 'gzip'], // a malformed q refuses the coding
  ])('Accept-Encoding %p -> %s', (header, want) => {
    expect(pickEncoding(header, offered)).toBe(want);
  });
});

describe('consoleHandler: precompressed files', () => {
  let dir: string;
  let server: Server;
  let port: number;
  const js = 'console.log("hello");'.repeat(200);
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-console-static-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><p>page</p>');
    writeFileSync(join(dir, 'assets', 'app-abc.js'), js);
    writeFileSync(join(dir, 'assets', 'app-abc.js.br'), brotliCompressSync(js));
    writeFileSync(join(dir, 'assets', 'app-abc.js.gz'), gzipSync(js));
    writeFileSync(join(dir, 'assets', 'plain-abc.css'), 'p{color:red}');
    const app = express();
    app.use('/console', consoleHandler(dir));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  // node's fetch would decode the body itself: a raw request shows what is on the wire
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });

  it('sends the brotli file to a client that accepts br, with its length, Vary and the immutable caching', async () => {
    const r = await get('/console/assets/app-abc.js', { 'accept-encoding': 'gzip, deflate, br' });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe('br');
    expect(r.headers.vary).toBe('Accept-Encoding');
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.headers['cache-control']).toBe(IMMUTABLE);
    expect(Number(r.headers['content-length'])).toBe(r.body.length);
    expect(r.body.length).toBeLessThan(js.length / 5);
    expect(brotliDecompressSync(r.body).toString()).toBe(js);
  });

  it('sends gzip to a gzip-only client, and the plain file to one that accepts neither', async () => {
    const gz = await get('/console/assets/app-abc.js', { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(js);
    const plain = await get('/console/assets/app-abc.js', {});
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toBe('Accept-Encoding');
    expect(plain.body.toString()).toBe(js);
    const refused = await get('/console/assets/app-abc.js', { 'accept-encoding': 'br;q=0, gzip;q=0' });
    expect(refused.headers['content-encoding']).toBeUndefined();
    expect(refused.body.toString()).toBe(js);
  });

  it('HEAD answers the headers of the encoded file without a body; a file without variants is sent as is, without Vary', async () => {
    const head = await get('/console/assets/app-abc.js', { 'accept-encoding': 'br' }, 'HEAD');
    expect(head.headers['content-encoding']).toBe('br');
    expect(head.body.length).toBe(0);
    const css = await get('/console/assets/plain-abc.css', { 'accept-encoding': 'br' });
    expect(css.headers['content-encoding']).toBeUndefined();
    expect(css.headers.vary).toBeUndefined();
    expect(css.body.toString()).toBe('p{color:red}');
    const page = await get('/console/images', { 'accept-encoding': 'br' });
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.body.toString()).toContain('page');
  });
});
