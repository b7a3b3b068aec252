import { lookup as dnsLookup, LookupAddress } from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction, Socket } from 'node:net';
import { Readable, Transform } from 'node:stream';
import type { AppConfig } from '../../config/app-config';
import { IngestError, isIngestError } from '../ingestion.errors';
import { UrlPolicy } from './url-policy';

/**
 * A safe HTTP(S) downloader (R13) on node:http/https: the body is streamed, never buffered whole.
 *
 * - every connection goes through a lookup hook that checks each address DNS returns against the
 *   UrlPolicy (IP literals are checked before connecting), and the socket's remote address is checked
 *   again once connected;
 * - redirects are followed by hand, up to `maxRedirects`, each hop re-checked;
 * - a connect timeout (TCP + TLS handshake) and an idle timeout (no byte for that long, while waiting
 *   for the headers or the body);
 * - a maximum size: a declared Content-Length (or Content-Range total) above it is refused before the
 *   first body byte is read, and a body growing past it is cut;
 * - `offset` asks for `Range: bytes=<offset>-` (resume); the result says whether the server honoured it.
 */
export interface FetchSettings {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  /** largest resource accepted, in bytes */
  maxSize: number;
}

export interface FetchOptions extends Partial<FetchSettings> {
  /** resume: ask for the bytes from this offset on */
  offset?: number;
  /** validator for If-Range (a strong ETag or a Last-Modified date) so a changed resource comes back whole */
  ifRange?: string;
  method?: 'GET' | 'HEAD';
  signal?: AbortSignal;
}

export interface FetchResponseInfo {
  status: number;
  /** the URL after redirects */
  finalUrl: string;
  /** the address the response came from */
  remoteAddress: string;
  /** where `body` starts in the resource: `offset` on a 206, 0 on a 200 (the server ignored the range) */
  offset: number;
  /** bytes this response carries, when declared */
  contentLength?: number;
  /** size of the whole resource, when known (Content-Length of a 200, total of a Content-Range) */
  totalSize?: number;
  /** the server advertised `Accept-Ranges: bytes` or answered a range request with 206 */
  acceptsRanges: boolean;
  etag?: string;
  lastModified?: string;
  contentType?: string;
  redirects: number;
}

export interface FetchResult extends FetchResponseInfo {
  /**
   * The body. Errors are IngestErrors: IDLE_TIMEOUT, CONNECTION_DROPPED (retryable), TOO_LARGE, ABORTED.
   * Destroy it to stop the download (closes the connection).
   */
  body: Readable;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
const USER_AGENT = 'hcm-image-service';

const header = (res: http.IncomingMessage, name: string): string | undefined => {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

const parseLength = (v: string | undefined): number | undefined => {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : Number.MAX_SAFE_INTEGER;
};

/** Maps a socket/parser error to an IngestError (phase: before or after the response headers). */
export function toIngestError(e: unknown, phase: 'connect' | 'body'): IngestError {
  if (isIngestError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? '';
  const msg = err?.message ?? String(e);
  if (err?.name === 'AbortError' || code === 'ABORT_ERR') return new IngestError('ABORTED', 'The download was cancelled', { cause: e });
  if (code === 'ENOTFOUND' || code === 'EAI_NONAME') return new IngestError('DNS_FAILED', `The host name does not resolve (${msg})`, { cause: e });
  if (code === 'EAI_AGAIN') return new IngestError('DNS_FAILED', `DNS lookup failed temporarily (${msg})`, { cause: e, retryable: true });
  if (/^(ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|ERR_SSL)/.test(code) || /certificate/i.test(msg)) {
    return new IngestError('TLS_FAILED', `TLS failed: ${msg}`, { cause: e });
  }
  if (phase === 'connect' && ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EADDRNOTAVAIL'].includes(code)) {
    return new IngestError('CONNECT_FAILED', `Could not connect: ${msg}`, { cause: e, retryable: true });
  }
  return new IngestError('CONNECTION_DROPPED', `The connection was lost: ${msg}`, { cause: e, retryable: true });
}

export class UrlFetcher {
  constructor(
    readonly policy: UrlPolicy,
    readonly settings: FetchSettings,
  ) {}

  /** The fetcher the service's settings describe (URL_*, INGEST_MAX_SIZE_BYTES). */
  static fromConfig(config: AppConfig): UrlFetcher {
    const u = config.ingestion.url;
    return new UrlFetcher(new UrlPolicy(u), {
      connectTimeoutMs: u.connectTimeoutMs,
      idleTimeoutMs: u.idleTimeoutMs,
      maxRedirects: u.maxRedirects,
      maxSize: config.ingestion.maxSizeBytes,
    });
  }

  /**
   * GETs `url` (following redirects) and resolves once the response headers are in, with the body as a
   * stream. Rejects with an IngestError for a refused URL/address, a connection failure, a status other
   * than 200/206 (HTTP_STATUS, `retryable` for 408/425/429/5xx), a declared size above the maximum.
   */
  async fetch(url: string | URL, opts: FetchOptions = {}): Promise<FetchResult> {
    const s = { ...this.settings, ...opts };
    let current = this.policy.checkUrl(url);
    for (let redirects = 0; ; redirects++) {
      const { req, res, remoteAddress, attachBody } = await this.requestOnce(current, s, opts);
      const status = res.statusCode ?? 0;
      if (REDIRECTS.has(status) && header(res, 'location') !== undefined) {
        res.resume();
        req.destroy();
        if (redirects >= s.maxRedirects) {
          throw new IngestError('TOO_MANY_REDIRECTS', `More than ${s.maxRedirects} redirects`, { details: { lastUrl: current.href } });
        }
        let next: URL;
        try {
          next = new URL(header(res, 'location')!, current);
        } catch {
          throw new IngestError('REDIRECT_INVALID', `Redirect to an invalid location: ${header(res, 'location')!.slice(0, 200)}`);
        }
        current = this.policy.checkUrl(next);
        continue;
      }
      try {
        const info = this.describe(res, current, remoteAddress, redirects, opts.offset ?? 0);
        if (info.totalSize !== undefined && info.totalSize > s.maxSize) {
          throw new IngestError('TOO_LARGE', `The file is ${info.totalSize} bytes, more than the ${s.maxSize} allowed`, {
            details: { size: info.totalSize, maxSize: s.maxSize },
          });
        }
        const body = opts.method === 'HEAD' ? Readable.from([]) : attachBody(info, s.maxSize);
        if (opts.method === 'HEAD') req.destroy();
        return { ...info, body };
      } catch (e) {
        res.resume();
        req.destroy();
        throw e;
      }
    }
  }

  /** HEAD `url` (following redirects): size, range support and validators, without the body. */
  async probe(url: string | URL, opts: Omit<FetchOptions, 'method' | 'offset'> = {}): Promise<FetchResponseInfo> {
    const { body: _ignored, ...info } = await this.fetch(url, { ...opts, method: 'HEAD' });
    return info;
  }

  private describe(res: http.IncomingMessage, url: URL, remoteAddress: string, redirects: number, offset: number): FetchResponseInfo {
    const status = res.statusCode ?? 0;
    const contentLength = parseLength(header(res, 'content-length'));
    const base = {
      status,
      finalUrl: url.href,
      remoteAddress,
      redirects,
      contentLength,
      acceptsRanges: /\bbytes\b/i.test(header(res, 'accept-ranges') ?? ''),
      etag: header(res, 'etag'),
      lastModified: header(res, 'last-modified'),
      contentType: header(res, 'content-type'),
    };
    if (status === 200) return { ...base, offset: 0, totalSize: contentLength };
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((header(res, 'content-range') ?? '').trim());
      if (!m || Number(m[1]) !== offset) {
        throw new IngestError('RANGE_MISMATCH', `Asked for bytes from ${offset}, the server sent ${header(res, 'content-range') ?? 'no Content-Range'}`);
      }
      const total = m[3] === '*' ? undefined : Number(m[3]);
      return { ...base, offset, acceptsRanges: true, contentLength: Number(m[2]) - Number(m[1]) + 1, totalSize: total };
    }
    if (status === 416) {
      const m = /^bytes \*\/(\d+)$/.exec((header(res, 'content-range') ?? '').trim());
      throw new IngestError('RANGE_NOT_SATISFIABLE', `The server cannot send bytes from ${offset}`, {
        details: { offset, totalSize: m ? Number(m[1]) : undefined },
      });
    }
    throw new IngestError('HTTP_STATUS', `The server answered HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`, {
      retryable: RETRYABLE_STATUS.has(status),
      details: { status, url: url.href },
    });
  }

  /** One request, no redirect handling. Resolves when the response headers are in. */
  private requestOnce(
    url: URL,
    s: FetchSettings,
    opts: FetchOptions,
  ): Promise<{
    req: http.ClientRequest;
    res: http.IncomingMessage;
    remoteAddress: string;
    attachBody: (info: FetchResponseInfo, maxSize: number) => Readable;
  }> {
    const policy = this.policy;
    const lookup: LookupFunction = (hostname, options, callback) => {
      dnsLookup(hostname, { all: true, family: options.family, hints: options.hints }, (err, addresses: LookupAddress[]) => {
        if (err) return callback(err, '', 4);
        if (!addresses.length) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 4);
        // refuse when any address is denied: a name pointing at both a public and a denied address is
        // a rebinding attempt or a mistake, and the socket may try any of them
        for (const a of addresses) {
          const d = policy.checkAddress(a.address, hostname);
          if (!d.allowed) return callback(new IngestError('URL_ADDRESS_DENIED', d.reason, { details: { host: hostname, address: a.address } }), '', 4);
        }
        if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
        callback(null, addresses[0].address, addresses[0].family);
      });
    };

    const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', accept: '*/*' };
    if (opts.offset && opts.offset > 0) {
      headers.range = `bytes=${opts.offset}-`;
      if (opts.ifRange) headers['if-range'] = opts.ifRange;
    }

    return new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      let settled = false;
      let body: Transform | undefined;
      let remoteAddress = '';
      const fail = (e: IngestError) => {
        if (body && !body.destroyed) body.destroy(e);
        if (!settled) {
          settled = true;
          reject(e);
        }
        req.destroy(e);
      };
      const req = mod.request(url, { method: opts.method ?? 'GET', headers, lookup, agent: false });

      const connectTimer = setTimeout(
        () => fail(new IngestError('CONNECT_TIMEOUT', `No connection to ${url.host} within ${s.connectTimeoutMs} ms`, { retryable: true })),
        s.connectTimeoutMs,
      );
      const onAbort = () => fail(new IngestError('ABORTED', 'The download was cancelled'));
      if (opts.signal?.aborted) {
        clearTimeout(connectTimer);
        req.destroy();
        return reject(new IngestError('ABORTED', 'The download was cancelled'));
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });

      req.on('socket', (socket: Socket) => {
        const connected = () => {
          clearTimeout(connectTimer);
          remoteAddress = socket.remoteAddress ?? '';
          const d = policy.checkAddress(remoteAddress, url.hostname);
          if (!d.allowed) fail(new IngestError('URL_ADDRESS_DENIED', d.reason, { details: { host: url.hostname, address: remoteAddress } }));
        };
        socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
      });
      const onIdle = () => {
        // quiet because our consumer is slow (backpressure paused the socket), not the server: wait on
        const res = (req as unknown as { res?: http.IncomingMessage }).res;
        if (res && !res.complete && (res.isPaused() || body?.writableNeedDrain)) {
          req.setTimeout(s.idleTimeoutMs, onIdle);
          return;
        }
        fail(new IngestError('IDLE_TIMEOUT', `No data from ${url.host} for ${s.idleTimeoutMs} ms`, { retryable: true }));
      };
      req.setTimeout(s.idleTimeoutMs, onIdle);
      req.on('close', () => {
        clearTimeout(connectTimer);
        opts.signal?.removeEventListener('abort', onAbort);
      });
      req.on('error', (e) => {
        clearTimeout(connectTimer);
        const err = toIngestError(e, settled ? 'body' : 'connect');
        if (body && !body.destroyed) body.destroy(err);
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      req.on('response', (res) => {
        settled = true;
        clearTimeout(connectTimer);
        const attachBody = (info: FetchResponseInfo, maxSize: number): Readable => {
          let received = 0;
          const expected = info.contentLength;
          body = new Transform({
            transform(chunk: Buffer, _enc, cb) {
              received += chunk.length;
              if (info.offset + received > maxSize) {
                return cb(new IngestError('TOO_LARGE', `The file is larger than the ${maxSize} bytes allowed`, { details: { maxSize } }));
              }
              cb(null, chunk);
            },
            flush(cb) {
              if (expected !== undefined && received < expected) {
                return cb(new IngestError('CONNECTION_DROPPED', `The connection ended after ${received} of ${expected} bytes`, { retryable: true }));
              }
              cb();
            },
          });
          // the consumer may not be reading yet when a timeout or abort destroys the body: without a
          // listener that would be an uncaught 'error'; with it the error stays on the stream for the reader
          body.on('error', () => undefined);
          res.on('error', (e) => body!.destroy(toIngestError(e, 'body')));
          res.on('aborted', () => body!.destroy(new IngestError('CONNECTION_DROPPED', `The connection was lost after ${received} bytes`, { retryable: true })));
          res.on('close', () => {
            if (!res.complete && !body!.destroyed) {
              body!.destroy(new IngestError('CONNECTION_DROPPED', `The connection was lost after ${received} bytes`, { retryable: true }));
            }
          });
          body.on('close', () => {
            if (!res.complete) req.destroy();
          });
          res.pipe(body);
          return body;
        };
        resolve({ req, res, remoteAddress: remoteAddress || res.socket?.remoteAddress || '', attachBody });
      });
      req.end();
    });
  }
}
