import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Garbage collection for a process that streams gigabytes of image bytes through Buffers whose memory lies outside
 * V8's heap (every socket read allocates one of 64 KiB).
 *
 * By default V8 starts a full mark-compact of the whole heap each time some tens of MiB of such memory were
 * allocated ("GC in old space requested"): on the service's heap (Nest, TypeORM, the contract's metadata) that was
 * 50-60 full collections per GiB imported, 9 of the 44 CPU seconds of a 1 GiB import-and-convert, and downloads
 * slowed to tens of MB/s on a busy machine. `tuneGcForStreaming` counts that memory in V8's global limit instead
 * (heap and external memory together): 2 full collections per GiB, 6x less CPU per GiB in bench:convert's
 * conditions. The Buffers then die in the ordinary young-generation collections (scavenges), which a stream that
 * makes little other garbage triggers seldom: `collectYoungGarbage`, called by the ingest pipeline every
 * YOUNG_GC_EVERY_BYTES, runs one (a millisecond or so: only the live young objects are visited), so the dead
 * Buffers' memory goes back at once and RSS stays bounded. Both are idempotent and never throw.
 */
export function tuneGcForStreaming(): void {
  setFlagsFromString('--external-memory-accounted-in-global-limit');
}

/** Bytes streamed between two young-generation collections (see collectYoungGarbage). */
export const YOUNG_GC_EVERY_BYTES = 16 * 1024 * 1024;

type GcFunction = (opts: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;
let gc: GcFunction | null | undefined;

/** One young-generation collection (a scavenge), where V8 lets the process ask for it; otherwise nothing. */
export function collectYoungGarbage(): void {
  if (gc === undefined) {
    try {
      // --expose-gc gives `gc` to contexts made after it (a fresh one hands it over; so would any vm context made
      // later, jest's per test file for one); the service's own main context, made before, has no `gc` global
      setFlagsFromString('--expose-gc');
      const found: unknown = runInNewContext('typeof gc === "function" ? gc : null');
      gc = typeof found === 'function' ? (found as GcFunction) : null;
    } catch {
      gc = null;
    }
  }
  try {
    gc?.({ type: 'minor' });
  } catch {
    gc = null;
  }
}
