import { Transform, TransformCallback } from 'node:stream';
import { collectYoungGarbage, YOUNG_GC_EVERY_BYTES } from '../common/gc-pacing';

export interface ProgressMeterOptions {
  /** at most one report per this many milliseconds */
  intervalMs: number;
  /**
   * Records progress. Resolves false when nobody wants these bytes any more (the image was deleted or moved
   * on): the stream then fails with `stopped()`. A rejection (a database blip) is passed to `onReportError`
   * and the bytes keep flowing; the next report tries again.
   */
  report: (bytesDone: number, bytesPerSecond: number) => Promise<boolean>;
  stopped: () => Error;
  onReportError?: (e: unknown) => void;
  /**
   * Bytes that may pass before `makeRoom` is asked for more (default: unlimited). `makeRoom(needed)` is
   * awaited, holding the stream, and resolves with the new allowance (at least `needed`) or rejects (for
   * example QUOTA_EXCEEDED), which fails the stream before the byte past the allowance moves on.
   */
  room?: number;
  makeRoom?: (needed: number) => Promise<number>;
}

/**
 * A pass-through Transform that counts bytes, reports progress a few times a second (never more than one
 * report in flight, so a slow database never holds the bytes back), computes a smoothed rate, and asks for
 * room (quota) before bytes beyond the current allowance pass.
 */
export class ProgressMeter extends Transform {
  bytes = 0;
  private room: number;
  private lastAt = Date.now();
  private lastBytes = 0;
  private collectedAt = 0;
  private rate = 0;
  private inFlight?: Promise<void>;
  /** a report due after a burst that ended before the interval did (so a stall shows the bytes that came) */
  private trailing?: NodeJS.Timeout;

  constructor(private readonly opts: ProgressMeterOptions) {
    super();
    this.room = opts.room ?? Number.POSITIVE_INFINITY;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    // the Buffers that came before are garbage now: a scavenge gives their memory back (gc-pacing.ts)
    if (this.bytes - this.collectedAt >= YOUNG_GC_EVERY_BYTES) {
      this.collectedAt = this.bytes;
      collectYoungGarbage();
    }
    if (this.bytes > this.room && this.opts.makeRoom) {
      this.opts.makeRoom(this.bytes).then(
        (room) => {
          this.room = room;
          if (this.bytes > room) return cb(new Error(`makeRoom granted ${room} bytes, ${this.bytes} needed`));
          this.maybeReport();
          cb(null, chunk);
        },
        (e: unknown) => cb(e as Error),
      );
      return;
    }
    this.maybeReport();
    cb(null, chunk);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearTimeout(this.trailing);
    cb(err);
  }

  override _flush(cb: TransformCallback): void {
    clearTimeout(this.trailing);
    // let the last report land before the stream ends, so none arrives after the caller moved the image on
    if (!this.inFlight) return cb();
    this.inFlight.then(
      () => cb(),
      () => cb(),
    );
  }

  /** The smoothed rate, bytes per second. */
  get bytesPerSecond(): number {
    return Math.round(this.rate);
  }

  private maybeReport(): void {
    const now = Date.now();
    const dt = now - this.lastAt;
    if (dt < this.opts.intervalMs || this.inFlight) {
      if (!this.trailing) {
        this.trailing = setTimeout(
          () => {
            this.trailing = undefined;
            if (!this.destroyed && !this.writableFinished) this.maybeReport();
          },
          Math.max(10, this.opts.intervalMs - dt),
        );
        this.trailing.unref();
      }
      return;
    }
    const instant = ((this.bytes - this.lastBytes) * 1000) / dt;
    // exponential smoothing over roughly the last second and a half of reports
    this.rate = this.lastBytes === 0 && this.rate === 0 ? instant : this.rate * 0.6 + instant * 0.4;
    this.lastAt = now;
    this.lastBytes = this.bytes;
    this.inFlight = this.opts.report(this.bytes, Math.round(this.rate)).then(
      (ok) => {
        this.inFlight = undefined;
        if (!ok && !this.destroyed) this.destroy(this.opts.stopped());
      },
      (e: unknown) => {
        this.inFlight = undefined;
        this.opts.onReportError?.(e);
      },
    );
  }
}
