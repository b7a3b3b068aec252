import { Transform, TransformCallback } from 'node:stream';
import { ChunkPool, releaseChunk } from '../storage/chunk-pool';

/** Chunks of about this size flow through the ingest pipeline. */
export const PIPELINE_CHUNK_BYTES = 1024 * 1024;
/** A slow source's bytes are passed on after at most this long, whatever their amount. */
export const PIPELINE_MAX_HOLD_MS = 50;

/**
 * Gathers the small chunks a socket delivers (at most 64 KiB each) into chunks of `size` bytes, so every later
 * stage (hash, format check, progress, the store) runs once per MiB instead of once per packet burst, and the
 * filesystem store writes 1 MiB at a time: about 30-50 % more throughput into the filesystem store on this
 * machine (measured against curl-speed loopback HTTP), for one memory copy and at most `size` bytes held.
 * A slow source is not held back: what has arrived moves on after `maxHoldMs`.
 *
 * With a `pool` (whose slots are `size` bytes) every chunk is copied into a reused pooled slot instead of a fresh
 * buffer (`Buffer.concat`), and chunks of `size` or more are copied too, so everything that leaves is pooled:
 * the store's writer gives each slot back once written (../storage/chunk-pool.ts).
 */
export class ChunkCoalescer extends Transform {
  private parts: Buffer[] = [];
  private held = 0;
  private timer?: NodeJS.Timeout;
  /** pooled: the slot being filled (`held` bytes of it) */
  private slot?: Buffer;

  constructor(
    private readonly size = PIPELINE_CHUNK_BYTES,
    private readonly maxHoldMs = PIPELINE_MAX_HOLD_MS,
    private readonly pool?: ChunkPool,
  ) {
    super();
    if (pool && pool.slotBytes !== size) throw new Error(`the pool's slots are ${pool.slotBytes} bytes, not ${size}`);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.pool) return this.fill(chunk, cb);
    if (this.held === 0 && chunk.length >= this.size) return cb(null, chunk);
    this.parts.push(chunk);
    this.held += chunk.length;
    if (this.held >= this.size) {
      this.release();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.release(), this.maxHoldMs);
      this.timer.unref();
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.release();
    cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearTimeout(this.timer);
    this.parts = [];
    if (this.slot) releaseChunk(this.slot); // nobody else has seen it
    this.slot = undefined;
    cb(err);
  }

  private fill(chunk: Buffer, cb: TransformCallback): void {
    for (let off = 0; off < chunk.length;) {
      if (this.destroyed) return cb(); // failed while a slot was passed on: nothing more to gather
      this.slot ??= this.pool!.take();
      const n = chunk.copy(this.slot, this.held, off);
      off += n;
      this.held += n;
      if (this.held >= this.size) this.release();
    }
    if (this.held > 0 && !this.timer) {
      this.timer = setTimeout(() => this.release(), this.maxHoldMs);
      this.timer.unref();
    }
    cb();
  }

  private release(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held === 0 || this.destroyed) return;
    if (this.slot) {
      const out = this.held === this.slot.length ? this.slot : this.slot.subarray(0, this.held);
      this.slot = undefined;
      this.held = 0;
      this.push(out);
      return;
    }
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.held);
    this.parts = [];
    this.held = 0;
    this.push(out);
  }
}
