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
      sab = pageAlignedSab(this.slotBytes);
      this.allocated++;
    }
    slots.set(sab, { refs: 1, pool: this });
    return Buffer.from(sab);
  }

  /**
   * Makes sure `n` slots (by default, and at most, as many as are kept) are free and their pages touched, so that
   * the first transfer after start-up neither allocates them nor faults their pages in.
   */
  prefill(n = this.maxFree): void {
    const want = Math.min(n, this.maxFree);
    while (this.free.length < want) {
      const sab = pageAlignedSab(this.slotBytes);
      new Uint8Array(sab).fill(0);
      this.allocated++;
      this.free.push(sab);
    }
  }

  /** Lets the free slots go (an application shutting down); slots in use come back later as usual. */
  drain(): void {
    this.free.length = 0;
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

const WASM_PAGE = 64 * 1024;
/** the one WebAssembly API used (the project's lib has no WebAssembly types) */
type WasmMemory = new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: ArrayBufferLike };
const wasmMemory = (globalThis as { WebAssembly?: { Memory: WasmMemory } }).WebAssembly?.Memory;
/** SharedArrayBuffers made by `pageAlignedSab` whose memory starts on a page */
const aligned = new WeakSet<ArrayBufferLike>();

/**
 * A SharedArrayBuffer of `bytes` whose memory starts on a page: a shared WebAssembly memory (V8 maps it with its
 * own mmap, so it is page-aligned); a plain SharedArrayBuffer when WebAssembly cannot give one (or `bytes` is not a
 * whole number of its 64 KiB pages).
 */
function pageAlignedSab(bytes: number): SharedArrayBuffer {
  if (wasmMemory && bytes % WASM_PAGE === 0) {
    try {
      const pages = bytes / WASM_PAGE;
      const sab = new wasmMemory({ initial: pages, maximum: pages, shared: true }).buffer as SharedArrayBuffer;
      aligned.add(sab);
      return sab;
    } catch {
      // no WebAssembly, or no address space left for another memory: a plain one
    }
  }
  return new SharedArrayBuffer(bytes);
}

/**
 * Whether `chunk` is a pooled slot (or a view of one) whose bytes start at a multiple of `alignment` (a power of two
 * up to the page size) in page-aligned memory: a buffer O_DIRECT may write from.
 */
export const isAligned = (chunk: Uint8Array, alignment: number): boolean => aligned.has(chunk.buffer) && chunk.byteOffset % alignment === 0;

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

/** The ingest pipeline's slots: 1 MiB each (PIPELINE_CHUNK_BYTES), at most 32 kept free (32 MiB). */
export const ingestChunkPool = new ChunkPool(1024 * 1024, 32);
