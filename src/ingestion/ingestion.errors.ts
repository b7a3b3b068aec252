/**
 * Why getting bytes in failed. The code is stable (the pipeline records it with the image's failure
 * reason); the message is for a person. `retryable` says whether trying again may help.
 */
export type IngestErrorCode =
  // URL safety (url-policy.ts)
  | 'URL_INVALID'
  | 'URL_SCHEME_NOT_ALLOWED'
  | 'URL_CREDENTIALS_NOT_ALLOWED'
  | 'URL_HOST_DENIED'
  | 'URL_ADDRESS_DENIED'
  // the connection (url-fetcher.ts)
  | 'DNS_FAILED'
  | 'CONNECT_FAILED'
  | 'CONNECT_TIMEOUT'
  | 'TLS_FAILED'
  | 'IDLE_TIMEOUT'
  | 'CONNECTION_DROPPED'
  | 'TOO_MANY_REDIRECTS'
  | 'REDIRECT_INVALID'
  | 'HTTP_STATUS'
  | 'RANGE_NOT_SATISFIABLE'
  | 'RANGE_MISMATCH'
  | 'TOO_LARGE'
  | 'ABORTED'
  // resumable-download.ts
  | 'RESTART_REQUIRED'
  | 'ATTEMPTS_EXHAUSTED'
  // the bytes (format-sniffer.ts, hashing.ts)
  | 'FORMAT_MISMATCH'
  | 'FORMAT_UNSAFE'
  | 'FORMAT_UNSUPPORTED'
  | 'CHECKSUM_MISMATCH'
  // qemu-img's verdict on the stored object (qemu-img.ts, image-inspector.ts)
  | 'IMAGE_CORRUPT'
  | 'INSPECTION_FAILED'
  | 'INSPECTION_LIMIT_EXCEEDED'
  | 'VIRTUAL_SIZE_TOO_LARGE'
  // qemu-img convert (qemu-img.ts)
  | 'CONVERSION_FAILED'
  // a converted copy whose source image went away (conversion.ts)
  | 'SOURCE_GONE';

export class IngestError extends Error {
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(
    readonly code: IngestErrorCode,
    message: string,
    opts: { retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IngestError';
    this.retryable = opts.retryable ?? false;
    this.details = opts.details;
  }
}

export const isIngestError = (e: unknown, code?: IngestErrorCode): e is IngestError => e instanceof IngestError && (code === undefined || e.code === code);
