import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * An S3-compatible server in-process for tests: @20minutes/s3rver behind a small shim adding the three
 * multipart calls it lacks and minio-js needs (ListMultipartUploads, ListParts, AbortMultipartUpload);
 * see docs stack-facts section 4 and appendix C. Credentials: S3RVER / S3RVER, region us-east-1.
 */
export interface S3TestServer {
  port: number;
  url: string;
  accessKey: string;
  secretKey: string;
  directory: string;
  close(): Promise<void>;
}

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const esc = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startS3Server(opts: { directory?: string; port?: number } = {}): Promise<S3TestServer> {
  const ownDir = !opts.directory;
  const directory = opts.directory ?? mkdtempSync(join(tmpdir(), 'hcm-s3rver-'));
  const mod = require('@20minutes/s3rver');
  // the class extends Koa, so `mod.default` is Koa itself: detect the class by its run() method
  const S3rver = typeof mod.prototype?.run === 'function' ? mod : mod.default;
  const s3 = new S3rver({ silent: true, directory });
  const koa = s3.callback() as (req: IncomingMessage, res: ServerResponse) => void;
  const uploadsDir = (bucket: string): string => s3.store.getResourcePath(bucket, undefined, 'uploads');
  const send = (res: ServerResponse, status: number, xml?: string) => {
    res.writeHead(status, xml ? { 'content-type': 'application/xml' } : {});
    res.end(xml ? `<?xml version="1.0" encoding="UTF-8"?>\n${xml}` : undefined);
  };
  const noSuchUpload = (res: ServerResponse, id: string) =>
    send(res, 404, `<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message><UploadId>${esc(id)}</UploadId></Error>`);

  async function shim(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const u = new URL(req.url ?? '/', 'http://x');
    const [, bucket, ...rest] = u.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const q = u.searchParams;
    if (!bucket) return false;
    if (req.method === 'GET' && !key && q.has('uploads')) {
      // ListMultipartUploads
      const prefix = q.get('prefix') ?? '';
      const dir = uploadsDir(bucket);
      const ids = await fsp.readdir(dir).catch(() => [] as string[]);
      const uploads: string[] = [];
      for (const id of ids) {
        const k = await fsp.readFile(join(dir, id, 'key'), 'utf8').catch(() => null);
        if (k === null || !k.startsWith(prefix)) continue;
        const st = await fsp.stat(join(dir, id));
        uploads.push(
          `<Upload><Key>${esc(k)}</Key><UploadId>${id}</UploadId><StorageClass>STANDARD</StorageClass><Initiated>${st.birthtime.toISOString()}</Initiated></Upload>`,
        );
      }
      send(
        res,
        200,
        `<ListMultipartUploadsResult xmlns="${NS}"><Bucket>${esc(bucket)}</Bucket><Prefix>${esc(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
      );
      return true;
    }
    const uploadId = q.get('uploadId');
    if (!key || !uploadId || !/^[A-Za-z0-9_-]+$/.test(uploadId)) return false;
    const dir = join(uploadsDir(bucket), uploadId);
    if (req.method === 'GET') {
      // ListParts
      const files = await fsp.readdir(dir).catch(() => null);
      if (!files) {
        noSuchUpload(res, uploadId);
        return true;
      }
      const parts: string[] = [];
      for (const n of files
        .filter((f) => /^\d+$/.test(f))
        .map(Number)
        .sort((a, b) => a - b)) {
        const st = await fsp.stat(join(dir, String(n)));
        const md5 = (await fsp.readFile(join(dir, `${n}.md5`), 'utf8').catch(() => '')).trim();
        parts.push(
          `<Part><PartNumber>${n}</PartNumber><LastModified>${st.mtime.toISOString()}</LastModified><ETag>"${md5}"</ETag><Size>${st.size}</Size></Part>`,
        );
      }
      send(
        res,
        200,
        `<ListPartsResult xmlns="${NS}"><Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><UploadId>${uploadId}</UploadId><MaxParts>10000</MaxParts><IsTruncated>false</IsTruncated>${parts.join('')}</ListPartsResult>`,
      );
      return true;
    }
    if (req.method === 'DELETE') {
      // AbortMultipartUpload
      const exists = await fsp.stat(dir).then(
        () => true,
        () => false,
      );
      if (!exists) {
        noSuchUpload(res, uploadId);
        return true;
      }
      await fsp.rm(dir, { recursive: true, force: true });
      send(res, 204);
      return true;
    }
    if (req.method === 'PUT' || req.method === 'POST') {
      // UploadPart / CompleteMultipartUpload on an aborted upload: S3 answers NoSuchUpload
      const exists = await fsp.stat(dir).then(
        () => true,
        () => false,
      );
      if (!exists) {
        req.resume();
        noSuchUpload(res, uploadId);
        return true;
      }
    }
    return false;
  }

  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    shim(req, res).then(
      (handled) => {
        if (!handled) koa(req, res);
      },
      (err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    );
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    directory,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
      if (ownDir) rmSync(directory, { recursive: true, force: true });
    },
  };
}
