import { createHash, Hash } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';
import { holdChunk, releaseChunk } from '../storage/chunk-pool';
import { hashThread } from './hash-worker';
import { IngestError } from './ingestion.errors';

/** Worker mode: at most this many bytes posted to the hashing thread and not hashed yet (then the stream waits). */
export const MAX_HASH_BACKLOG_BYTES = 8 * 1024 * 1024;

export type ChecksumAlgorithm = 'sha256' | 'md5';

export interface Checksum {
  algorithm: ChecksumAlgorithm;
  /** lower-case hex */
  hex: string;
}

export interface Digests {
  size: number;
  sha256: string;
  md5?: string;
}

/**
 * Parses a checksum as users give it: `sha256:<64 hex>`, `md5:<32 hex>`, or bare hex (64 digits is
 * sha256, 32 is md5). Returns null when it is none of these.
 */
export function parseChecksum(text: string): Checksum | null {
  const t = text.trim().toLowerCase();
  const m = /^(?:(sha256|md5)[:=])?([0-9a-f]+)$/.exec(t);
  if (!m) return null;
  const hex = m[2];
  const algorithm: ChecksumAlgorithm | undefined =
    (m[1] as ChecksumAlgorithm | undefined) ?? (hex.length === 64 ? 'sha256' : hex.length === 32 ? 'md5' : undefined);
  if (!algorithm || hex.length !== (algorithm === 'sha256' ? 64 : 32)) return null;
  return { algorithm, hex };
}

export interface HashingOptions {
  /** compute md5 too (INGEST_COMPUTE_MD5); forced on when `expected` is an md5 */
  md5?: boolean;
  /** verified when the stream ends: a mismatch fails the stream with CHECKSUM_MISMATCH */
  expected?: Checksum | string;
  /** fail with TOO_LARGE past this many bytes */
  maxBytes?: number;
  /** called with the byte count at most every `progressIntervalMs` (default 500) and once at the end */
  onProgress?: (bytes: number) => void;
  progressIntervalMs?: number;
  /**
   * hash in the process's hashing thread (./hash-worker.ts) while the chunks flow on: pooled chunks are shared
   * with it (and held until hashed), others copied; at most MAX_HASH_BACKLOG_BYTES wait to be hashed
   */
  worker?: boolean;
}

/**
 * A pass-through Transform that computes sha256 (and md5 when asked) inline and counts bytes. Put it in
 * the pipeline before the storage put: an error in its flush (checksum mismatch) fails the put, so a
 * file with the wrong checksum is never stored under its key.
 */
export class HashingStream extends Transform {
  private readonly sha256?: Hash;
  private readonly md5?: Hash;
  /** worker mode: the hash's id in the hashing thread, the chunks posted and not hashed yet, their bytes */
  private readonly job?: number;
  private readonly posted: Uint8Array[] = [];
  private backlog = 0;
  private waiting?: TransformCallback;
  private readonly expected?: Checksum;
  private lastProgress = 0;
  private result?: Digests;
  bytes = 0;

  constructor(private readonly opts: HashingOptions = {}) {
    super();
    if (typeof opts.expected === 'string') {
      const parsed = parseChecksum(opts.expected);
      if (!parsed) throw new IngestError('CHECKSUM_MISMATCH', `Not a sha256 or md5 checksum: ${opts.expected.slice(0, 100)}`);
      this.expected = parsed;
    } else {
      this.expected = opts.expected;
    }
    const md5 = opts.md5 || this.expected?.algorithm === 'md5';
    if (opts.worker) {
      this.job = hashThread.open(
        md5,
        () => this.hashed(),
        (e) => this.destroy(e),
      );
    } else {
      this.sha256 = createHash('sha256');
      if (md5) this.md5 = createHash('md5');
    }
  }

  /** Worker mode: the oldest posted chunk was hashed. */
  private hashed(): void {
    const chunk = this.posted.shift();
    if (!chunk) return;
    this.backlog -= chunk.length;
    releaseChunk(chunk);
    const cb = this.waiting;
    if (cb && this.backlog <= MAX_HASH_BACKLOG_BYTES) {
      this.waiting = undefined;
      cb();
    }
  }

  /** The digests, once the stream has ended (undefined before). */
  get digests(): Digests | undefined {
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.opts.maxBytes !== undefined && this.bytes > this.opts.maxBytes) {
      return cb(new IngestError('TOO_LARGE', `The file is larger than the ${this.opts.maxBytes} bytes allowed`, { details: { maxSize: this.opts.maxBytes } }));
    }
    if (this.job !== undefined) {
      holdChunk(chunk); // released when hashed (a no-op for a chunk not pooled: it is copied)
      this.posted.push(chunk);
      this.backlog += chunk.length;
      hashThread.update(this.job, chunk);
    } else {
      this.sha256!.update(chunk);
      this.md5?.update(chunk);
    }
    if (this.opts.onProgress) {
      const now = Date.now();
      if (now - this.lastProgress >= (this.opts.progressIntervalMs ?? 500)) {
        this.lastProgress = now;
        this.opts.onProgress(this.bytes);
      }
    }
    this.push(chunk);
    if (this.backlog > MAX_HASH_BACKLOG_BYTES) this.waiting = cb;
    else cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    // chunks the worker may still be reading are not released: their slots are left to the collector
    if (this.job !== undefined && !this.result) hashThread.close(this.job);
    this.waiting = undefined;
    cb(err);
  }

  override _flush(cb: TransformCallback): void {
    if (this.job === undefined) return this.finish({ size: this.bytes, sha256: this.sha256!.digest('hex'), md5: this.md5?.digest('hex') }, cb);
    hashThread.digest(this.job).then(
      (d) => this.finish({ size: this.bytes, sha256: d.sha256, md5: d.md5 }, cb),
      (e: Error) => cb(e),
    );
  }

  private finish(digests: Digests, cb: TransformCallback): void {
    const result: Digests = { size: digests.size, sha256: digests.sha256 };
    if (digests.md5) result.md5 = digests.md5;
    this.result = result;
    this.opts.onProgress?.(this.bytes);
    const exp = this.expected;
    if (exp) {
      const actual = exp.algorithm === 'sha256' ? result.sha256 : result.md5;
      if (actual !== exp.hex) {
        return cb(
          new IngestError('CHECKSUM_MISMATCH', `The file's ${exp.algorithm} is ${actual}, not the expected ${exp.hex}`, {
            details: { algorithm: exp.algorithm, expected: exp.hex, actual },
          }),
        );
      }
    }
    cb();
  }
}
