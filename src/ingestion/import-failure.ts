import { AppError } from '../common/errors';
import { FileSourceError, FileSourceErrorCode } from '../file-sources/file-source.errors';
import { PermanentJobError } from '../jobs/job-queue';
import { StorageError } from '../storage/object-storage';
import { isDependencyUnavailable } from '../common/dependency-errors';
import { IngestError, IngestErrorCode } from './ingestion.errors';

/** Why an import failed, for the image's statusReason and the logs. */
export interface Failure {
  /** stable: an IngestErrorCode, a FileSourceErrorCode (picked files), QUOTA_EXCEEDED, STORAGE_FAILED or IMPORT_FAILED */
  code: IngestErrorCode | FileSourceErrorCode | 'QUOTA_EXCEEDED' | 'STORAGE_FAILED' | 'IMPORT_FAILED';
  /** a sentence a person understands */
  reason: string;
  /** another attempt cannot help (bad content, refused URL, quota, a 4xx) */
  permanent: boolean;
  /** details of the underlying error, for an HTTP error body */
  details?: Record<string, unknown>;
}

/** Thrown to the job queue when retrying cannot help: the queue fails the job at once. */
export class PermanentImportFailure extends PermanentJobError {
  constructor(readonly failure: Failure) {
    super(failure.reason);
    this.name = 'PermanentImportFailure';
  }
}

/** Thrown to the job queue when another attempt may help: the queue retries with backoff. */
export class RetryableImportFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.reason);
    this.name = 'RetryableImportFailure';
  }
}

/** The transfer stopped because the image was deleted or moved on (its progress could not be recorded). */
export class ImportStopped extends Error {
  constructor(imageId: string) {
    super(`Image ${imageId} was deleted or is no longer importing`);
    this.name = 'ImportStopped';
  }
}

const MAX_REASON = 1000;
const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB" */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
}

const clip = (s: string) => (s.length > MAX_REASON ? `${s.slice(0, MAX_REASON - 1)}…` : s);
const hostOf = (url: string | undefined): string => {
  try {
    return url ? new URL(url).host : 'the server';
  } catch {
    return 'the server';
  }
};

/**
 * Turns whatever stopped an import into a Failure. `url` is the image's source URL (downloads), so the reason
 * names the server: "The server at http://10.0.0.5/centos.qcow2 answered 404 Not Found".
 */
export function describeFailure(e: unknown, url?: string): Failure {
  if (e instanceof PermanentImportFailure || e instanceof RetryableImportFailure) return e.failure;
  if (e instanceof IngestError) return fromIngestError(e, url);
  if (e instanceof FileSourceError) {
    // the message names the file and the source (never a password); the code is appended for people to quote
    return { code: e.code, reason: clip(`${e.message} [${e.code}]`), permanent: !e.retryable, details: { ...(e.details ?? {}), fileSourceCode: e.code } };
  }
  if (e instanceof AppError && e.code === 'QUOTA_EXCEEDED') {
    const d = e.details ?? {};
    const remaining = typeof d.remaining === 'number' ? formatBytes(d.remaining) : 'no limit';
    const limit = typeof d.limit === 'number' ? formatBytes(d.limit) : 'unlimited';
    return {
      code: 'QUOTA_EXCEEDED',
      reason: clip(
        `The department's image storage quota has no room for this file: ${formatBytes(Number(d.requested ?? 0))} more were needed, ${remaining} is left of ${limit}`,
      ),
      permanent: true,
      details: d,
    };
  }
  if (e instanceof StorageError || isDependencyUnavailable(e)) {
    // the object store (or the database) could not be reached: a later attempt may find it back
    return { code: 'STORAGE_FAILED', reason: clip(`Storing the file failed: ${(e as Error).message}`), permanent: false };
  }
  const message = (e as Error)?.message ?? String(e);
  return { code: 'IMPORT_FAILED', reason: clip(`The import failed: ${message}`), permanent: false };
}

function fromIngestError(e: IngestError, url?: string): Failure {
  const d = e.details ?? {};
  const f = (reason: string, permanent = !e.retryable): Failure => ({ code: e.code, reason: clip(reason), permanent, details: { ...d, ingestCode: e.code } });
  switch (e.code) {
    case 'HTTP_STATUS': {
      const at = typeof d.url === 'string' ? d.url : url;
      return f(`The server at ${at ?? 'the source URL'} answered ${e.message.replace(/^The server answered HTTP /, '')}`);
    }
    case 'URL_INVALID':
    case 'URL_SCHEME_NOT_ALLOWED':
    case 'URL_CREDENTIALS_NOT_ALLOWED':
    case 'URL_HOST_DENIED':
    case 'URL_ADDRESS_DENIED':
      return f(`The URL ${url ?? ''} is refused: ${e.message}`.replace('URL  is', 'URL is'));
    case 'DNS_FAILED':
    case 'CONNECT_FAILED':
    case 'CONNECT_TIMEOUT':
    case 'TLS_FAILED':
      return f(`Could not download from ${hostOf(url)}: ${e.message}`);
    case 'IDLE_TIMEOUT':
    case 'CONNECTION_DROPPED':
    case 'RANGE_NOT_SATISFIABLE':
    case 'RANGE_MISMATCH':
    case 'RESTART_REQUIRED':
    case 'TOO_MANY_REDIRECTS':
    case 'REDIRECT_INVALID':
      return f(`The download from ${hostOf(url)} failed: ${e.message}`);
    case 'ATTEMPTS_EXHAUSTED':
      // the download already retried its connection; a later job attempt may find the server back
      return f(`The download from ${hostOf(url)} kept failing. ${e.message}`, false);
    case 'TOO_LARGE':
      return f(`${e.message} (INGEST_MAX_SIZE_BYTES)`, true);
    case 'ABORTED':
      return f('The transfer was cancelled', true);
    case 'FORMAT_MISMATCH':
    case 'FORMAT_UNSAFE':
    case 'FORMAT_UNSUPPORTED':
    case 'CHECKSUM_MISMATCH':
    case 'IMAGE_CORRUPT':
    case 'INSPECTION_FAILED':
    case 'INSPECTION_LIMIT_EXCEEDED':
    case 'VIRTUAL_SIZE_TOO_LARGE':
    case 'CONVERSION_FAILED':
    case 'SOURCE_GONE':
      return f(e.message, true);
  }
}
