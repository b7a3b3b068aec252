import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { IngestError, isIngestError } from '../ingestion.errors';
import { FetchOptions, FetchResult, toIngestError, UrlFetcher } from './url-fetcher';

/**
 * A download that survives dropped connections.
 *
 * `resumableDownload(fetcher, url, opts, consume)` calls `consume(body, start)` with one logical
 * stream of the file from byte 0. When the connection drops (or goes idle) it retries with backoff:
 *
 * - **resume**: where the server supports ranges (Accept-Ranges: bytes, or a 206) and gave a
 *   validator (a strong ETag or Last-Modified), it reconnects with `Range: bytes=<received>-` and
 *   `If-Range`; a 206 from the same byte with the same validator and size continues the SAME body
 *   stream, invisibly to the consumer;
 * - **restart**: otherwise (no range support, no validator, or the file changed: a 200, a different
 *   ETag or size) the body fails with `RESTART_REQUIRED`. The consumer's promise then rejects (a
 *   storage putStream removes what it wrote on its own), and `consume` is called again with a fresh
 *   body from byte 0. A consumer therefore only has to be safe to call again (keep per-attempt state,
 *   such as hashes, inside it).
 *
 * Attempts: at most `maxAttempts` failed connection attempts in a row; a failure after at least
 * `progressResetBytes` new bytes arrived by a resumed connection starts the count again (a long
 * download over a flaky link keeps going while it progresses). Restarts never reset the count.
 * Errors that trying again cannot fix (refused URL, 4xx, too large) end the download at once.
 *
 * The consumer sees `start.totalSize` (when the server declared it) before reading a byte: the place
 * to check the quota. If `consume` rejects for any reason other than a restart, the download stops and
 * the promise rejects with that error.
 */
export interface DownloadStart {
  /** 1 for the first start, 2 after the first restart, ... */
  run: number;
  finalUrl: string;
  /** size of the file when the server declared it */
  totalSize?: number;
  contentType?: string;
  /** a dropped connection can be resumed with a Range request (else it restarts) */
  resumable: boolean;
  etag?: string;
  lastModified?: string;
  /** where the body starts in the file: `from.offset` when the crashed download was resumed, else 0 */
  offset: number;
  /** why `from` was not used (the file changed, the server cannot range): the body starts at 0 */
  resumeRefused?: string;
}

/** Where a download that died with its process stopped, and what the file was then (its validators and size). */
export interface ResumeFrom {
  offset: number;
  etag?: string;
  lastModified?: string;
  totalSize?: number;
}

export type DownloadEvent =
  | { type: 'retry'; attempt: number; delayMs: number; error: IngestError; receivedBytes: number; willResume: boolean }
  | { type: 'resumed'; offset: number }
  | { type: 'restart'; reason: string; discardedBytes: number };

export interface ResumableDownloadOptions extends Omit<FetchOptions, 'offset' | 'ifRange' | 'method'> {
  /** failed connection attempts in a row before giving up (URL_MAX_ATTEMPTS) */
  maxAttempts: number;
  /** first backoff delay; doubles each failure, with +-20% jitter (URL_RETRY_BASE_DELAY_MS) */
  retryBaseDelayMs: number;
  retryMaxDelayMs?: number;
  /** new bytes a resumed connection must deliver before a failure no longer counts against it */
  progressResetBytes?: number;
  onEvent?: (e: DownloadEvent) => void;
  /**
   * The first run asks for the file from `from.offset` (Range with If-Range on the validator it had): a 206 from
   * that byte with the same validators and size gives a body from there (`start.offset`); anything else (a 200,
   * another ETag, Last-Modified or size, a 416) a body from byte 0 and `start.resumeRefused` says why.
   */
  from?: ResumeFrom;
}

const strongEtag = (etag?: string): string | undefined => (etag && !etag.startsWith('W/') ? etag : undefined);

export async function resumableDownload<T>(
  fetcher: UrlFetcher,
  url: string,
  opts: ResumableDownloadOptions,
  consume: (body: Readable, start: DownloadStart) => Promise<T>,
): Promise<T> {
  const maxAttempts = Math.max(1, opts.maxAttempts);
  const maxDelay = opts.retryMaxDelayMs ?? 30_000;
  const progressReset = opts.progressResetBytes ?? 1024 * 1024;
  const emit = (e: DownloadEvent) => opts.onEvent?.(e);
  const fetchOpts: FetchOptions = {
    connectTimeoutMs: opts.connectTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs,
    maxRedirects: opts.maxRedirects,
    maxSize: opts.maxSize,
  };
  for (const k of Object.keys(fetchOpts) as (keyof FetchOptions)[]) if (fetchOpts[k] === undefined) delete fetchOpts[k];

  let failures = 0;

  const checkAborted = () => {
    if (opts.signal?.aborted) throw new IngestError('ABORTED', 'The download was cancelled');
  };

  /** Counts a failure; throws when it is final, else waits the backoff. */
  const failed = async (e: unknown, receivedBytes: number, willResume: boolean, signal: AbortSignal): Promise<void> => {
    const err = toIngestError(e, 'body');
    if (!err.retryable) throw err;
    failures++;
    if (failures >= maxAttempts) {
      throw new IngestError('ATTEMPTS_EXHAUSTED', `Gave up after ${failures} failed attempts; last: ${err.message}`, {
        cause: err,
        details: { lastCode: err.code, attempts: failures },
      });
    }
    const base = Math.min(maxDelay, opts.retryBaseDelayMs * 2 ** (failures - 1));
    const delayMs = Math.round(base * (0.8 + Math.random() * 0.4));
    emit({ type: 'retry', attempt: failures, delayMs, error: err, receivedBytes, willResume });
    try {
      await sleep(delayMs, undefined, { signal });
    } catch {
      throw new IngestError('ABORTED', 'The download was cancelled');
    }
  };

  /** Connects (from `offset`), retrying connection failures. */
  const connect = async (offset: number, ifRange: string | undefined, signal: AbortSignal): Promise<FetchResult> => {
    for (;;) {
      checkAborted();
      try {
        return await fetcher.fetch(url, { ...fetchOpts, offset, ifRange, signal });
      } catch (e) {
        await failed(e, offset, offset > 0, signal);
      }
    }
  };

  for (let run = 1; ; run++) {
    const ac = new AbortController();
    const onOuterAbort = () => ac.abort();
    opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
    let restartReason: string | undefined;
    let received = 0;
    try {
      const from = run === 1 && opts.from && opts.from.offset > 0 ? opts.from : undefined;
      let resumeRefused: string | undefined;
      let first: FetchResult | undefined;
      if (from) {
        const fromValidator = strongEtag(from.etag) ?? from.lastModified;
        if (!fromValidator) resumeRefused = 'the file had no validator (ETag/Last-Modified) to resume safely';
        else {
          let res: FetchResult | undefined;
          try {
            res = await connect(from.offset, fromValidator, ac.signal);
          } catch (e) {
            if (!isIngestError(e) || e.code !== 'RANGE_NOT_SATISFIABLE') throw e;
            resumeRefused = `the server cannot send bytes from ${from.offset}`;
          }
          if (res) {
            const same =
              res.status === 206 &&
              res.offset === from.offset &&
              (from.etag === undefined || res.etag === from.etag) &&
              (from.lastModified === undefined || res.lastModified === from.lastModified) &&
              (from.totalSize === undefined || res.totalSize === from.totalSize);
            if (same) {
              first = res;
              received = from.offset;
            } else if (res.status === 200) {
              first = res; // the whole file (If-Range did not match, or no range support): a fresh start
              resumeRefused = 'the file changed on the server (validator or size differs), or it no longer serves ranges';
            } else {
              res.body.destroy();
              resumeRefused = 'the file changed on the server (validator or size differs)';
            }
          }
        }
      }
      first ??= await connect(0, undefined, ac.signal);
      const offset = received;
      const validator = strongEtag(first.etag) ?? first.lastModified;
      const resumable = first.acceptsRanges && validator !== undefined;
      const total = first.totalSize;

      let current: FetchResult = first;
      const firstRes: FetchResult = first;
      async function* chunks(): AsyncGenerator<Buffer> {
        let res = firstRes;
        let sinceFailure = 0;
        for (;;) {
          try {
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              received += chunk.length;
              sinceFailure += chunk.length;
              yield chunk;
            }
            if (total !== undefined && received < total) {
              throw new IngestError('CONNECTION_DROPPED', `The connection ended after ${received} of ${total} bytes`, { retryable: true });
            }
            return;
          } catch (e) {
            res.body.destroy();
            if (isIngestError(e) && !e.retryable) throw e;
            if (resumable && sinceFailure >= progressReset) failures = 0;
            sinceFailure = 0;
            await failed(e, received, resumable, ac.signal);
            if (!resumable) {
              restartReason = firstRes.acceptsRanges
                ? 'the server gave no validator (ETag/Last-Modified) to resume safely'
                : 'the server does not support Range requests';
              throw new IngestError('RESTART_REQUIRED', `Download restarts from the beginning: ${restartReason}`, { retryable: true });
            }
            const next = await connect(received, validator, ac.signal);
            const sameFile =
              next.status === 206 &&
              next.offset === received &&
              (firstRes.etag === undefined || next.etag === firstRes.etag) &&
              (firstRes.lastModified === undefined || next.lastModified === firstRes.lastModified) &&
              (total === undefined || next.totalSize === undefined || next.totalSize === total);
            if (!sameFile) {
              next.body.destroy();
              restartReason =
                next.status === 206 ? 'the file changed on the server (validator or size differs)' : `the server answered ${next.status} to a Range request`;
              throw new IngestError('RESTART_REQUIRED', `Download restarts from the beginning: ${restartReason}`, { retryable: true });
            }
            emit({ type: 'resumed', offset: received });
            res = current = next;
          }
        }
      }

      const body = Readable.from(chunks(), { objectMode: false });
      body.on('close', () => {
        if (!body.readableEnded) ac.abort();
      });
      const start: DownloadStart = {
        run,
        finalUrl: first.finalUrl,
        totalSize: total,
        contentType: first.contentType,
        resumable,
        etag: first.etag,
        lastModified: first.lastModified,
        offset,
        resumeRefused,
      };
      try {
        return await consume(body, start);
      } finally {
        body.destroy();
        current.body.destroy();
      }
    } catch (e) {
      if (restartReason === undefined) throw e;
      emit({ type: 'restart', reason: restartReason, discardedBytes: received });
    } finally {
      opts.signal?.removeEventListener('abort', onOuterAbort);
      ac.abort();
    }
  }
}

/** Options for resumableDownload from the service's settings. */
export function downloadOptionsFrom(config: {
  ingestion: { maxSizeBytes: number; url: { maxAttempts: number; retryBaseDelayMs: number } };
}): Pick<ResumableDownloadOptions, 'maxAttempts' | 'retryBaseDelayMs' | 'maxSize'> {
  return { maxAttempts: config.ingestion.url.maxAttempts, retryBaseDelayMs: config.ingestion.url.retryBaseDelayMs, maxSize: config.ingestion.maxSizeBytes };
}
