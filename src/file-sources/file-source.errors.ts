/**
 * Why listing or reading a file source failed. The code is stable: an import records it with the image's
 * failure reason (and in metrics), the HTTP API maps it to one of its error codes. The message is for a person
 * and never carries a password.
 */
export type FileSourceErrorCode =
  // the request
  | 'FILE_PATH_INVALID'
  | 'FILE_SOURCE_NOT_CONFIGURED'
  | 'FILE_NOT_FOUND'
  | 'FILE_NOT_A_FILE'
  | 'FILE_NOT_A_DIRECTORY'
  | 'FILE_ACCESS_DENIED'
  // the source
  | 'FILE_SOURCE_AUTH_FAILED'
  | 'FILE_SOURCE_SHARE_NOT_FOUND'
  | 'FILE_SOURCE_UNREACHABLE'
  | 'FILE_SOURCE_TIMEOUT'
  | 'FILE_SOURCE_FAILED'
  // the bytes
  | 'FILE_BUSY'
  | 'FILE_READ_INTERRUPTED'
  | 'FILE_SHORT_READ'
  | 'FILE_CHANGED';

/** Codes another attempt may fix (the share comes back, the writer finishes); the rest are permanent. */
const RETRYABLE: ReadonlySet<FileSourceErrorCode> = new Set<FileSourceErrorCode>([
  'FILE_SOURCE_UNREACHABLE',
  'FILE_SOURCE_TIMEOUT',
  'FILE_SOURCE_FAILED',
  'FILE_BUSY',
  'FILE_READ_INTERRUPTED',
  'FILE_SHORT_READ',
  'FILE_CHANGED',
]);

export class FileSourceError extends Error {
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(
    readonly code: FileSourceErrorCode,
    message: string,
    opts: { retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FileSourceError';
    this.retryable = opts.retryable ?? RETRYABLE.has(code);
    this.details = opts.details;
  }
}

export const isFileSourceError = (e: unknown, code?: FileSourceErrorCode): e is FileSourceError =>
  e instanceof FileSourceError && (code === undefined || e.code === code);
