import type { Writable } from 'node:stream';

/**
 * Large buffers reused by the ingest pipeline instead of a fresh 1 MiB Buffer per MiB.
 *
 * Why: an upload or import allocated about a thousand 1 MiB buffers per GiB. They are external memory to V8, and
 * after the process had been idle for a few seconds that churn set off full garbage collections (23-37 per GiB,
 * 4-6 s of CPU per GiB instead of 2). A pooled slot is allocated once and written again and again.
 *
 * Each slot is a SharedArrayBuffer, so the hashing worker thread reads the same memory the filesystem store
 * writes (no copy for it). A slot is counted: `take` gives it with one hold (its consumer, the store's writer);
 * `holdChunk` adds one (the hashing worker); `releaseChunk` drops one, and at zero the slot is free again.
 * The rule that keeps this safe: a stage either passes a pooled chunk on whole, or copies what it keeps
 * (as the format check does); nothing may keep a view of a pooled chunk past its release. A chunk nobody
 * releases (a failed stream, a store that does not release) is simply collected: the pool then allocates anew.
 */
export class ChunkPool {
  private readonly free: SharedArrayBuffer[] = [];
  /** slots created, and takes served by a free slot (for tests and benchmarks) */
  allocated = 0;
  reused = 0;

  constructor(
    readonly slotBytes: number,
    private readonly maxFree: number,
  ) {}

  /** A buffer of `slotBytes`, held once (by its consumer). */
  take(): Buffer {
    let sab = this.free.pop();
    if (sab) this.reused++;
    else {
      sab = new SharedArrayBuffer(this.slotBytes);
      this.allocated++;
    }
    slots.set(sab, { refs: 1, pool: this });
    return Buffer.from(sab);
  }

  /** Free slots kept for reuse. */
  get freeSlots(): number {
    return this.free.length;
  }

  /** @internal */
  giveBack(sab: SharedArrayBuffer): void {
    if (this.free.length < this.maxFree) this.free.push(sab);
  }
}

interface Slot {
  refs: number;
  pool: ChunkPool;
}

const slots = new WeakMap<ArrayBufferLike, Slot>();

/** Whether `chunk` is (a view of) a pooled slot in use. */
export const isPooled = (chunk: Uint8Array): boolean => slots.has(chunk.buffer);

/** One more holder of a pooled chunk (false, and nothing done, for any other buffer). */
export function holdChunk(chunk: Uint8Array): boolean {
  const s = slots.get(chunk.buffer);
  if (!s) return false;
  s.refs++;
  return true;
}

/** One holder is done with `chunk`: the last one gives its slot back. A no-op for any other buffer. */
export function releaseChunk(chunk: Uint8Array): void {
  const s = slots.get(chunk.buffer);
  if (!s) return;
  if (--s.refs > 0) return;
  slots.delete(chunk.buffer);
  s.pool.giveBack(chunk.buffer as SharedArrayBuffer);
}

type WriteFn = (chunk: Buffer, enc: BufferEncoding, cb: (e?: Error | null) => void) => void;
type WritevFn = (chunks: { chunk: Buffer }[], cb: (e?: Error | null) => void) => void;

/**
 * Makes `out` (a file write stream) release each pooled chunk once its write has completed: the consumer's
 * hold taken by `ChunkPool.take`.
 */
export function releaseAfterWrite<W extends Writable>(out: W): W {
  const w = out as unknown as { _write: WriteFn; _writev?: WritevFn };
  const write = w._write;
  const writev = w._writev;
  w._write = function (this: unknown, chunk, enc, cb) {
    write.call(this, chunk, enc, (e) => {
      releaseChunk(chunk);
      cb(e);
    });
  };
  if (writev) {
    w._writev = function (this: unknown, chunks, cb) {
      writev.call(this, chunks, (e) => {
        for (const c of chunks) releaseChunk(c.chunk);
        cb(e);
      });
    };
  }
  return out;
}

/** The ingest pipeline's slots: 1 MiB each (PIPELINE_CHUNK_BYTES), at most 32 kept free (32 MiB). */
export const ingestChunkPool = new ChunkPool(1024 * 1024, 32);
