import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Young-generation collections (scavenges) asked for while bytes stream through, so that the short-lived
 * buffers of a transfer are freed before they add up to V8's external-memory limit.
 *
 * Why: every chunk an HTTP body or a socket delivers is a fresh buffer outside the JS heap (Node's HTTP parser
 * copies each body piece into a new one). They die young, but the few JS objects they come with rarely fill the
 * young generation, so no scavenge runs during a transfer; the dead buffers' memory then counts as allocated
 * until V8 reaches its external-memory limit (64 MB more than after the last full collection) and runs a full
 * mark-compact of the whole heap. That was 33-48 full collections per GiB uploaded, 10-130 ms each on this
 * service's ~50 MB heap. A scavenge every YOUNG_GC_EVERY_BYTES frees those buffers for about a millisecond.
 * Measured with bench:upload (platform shape, 1 GiB after 10 s idle): every 32 MiB still left 22-37 full
 * collections per GiB (the buffers in flight at a scavenge survive it and, promoted, wait for a full one);
 * every 4 MiB left 0-2, at 1.9-2.1 s of CPU per GiB against 5.3-6.5 s before.
 */
export const YOUNG_GC_EVERY_BYTES = 4 * 1024 * 1024;

type GcFn = (opts: { type: 'minor' | 'major'; execution: 'sync' | 'async' }) => void;

let gcFn: GcFn | null | undefined;

function gc(): GcFn | null {
  if (gcFn !== undefined) return gcFn;
  try {
    const exposed = (globalThis as { gc?: GcFn }).gc;
    if (exposed) return (gcFn = exposed);
    // --expose-gc set now applies to contexts created after it: a new context hands out the function
    setFlagsFromString('--expose-gc');
    gcFn = (runInNewContext('gc') as GcFn | undefined) ?? null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

let streamed = 0;

/** Counts `bytes` that went through a transfer; every YOUNG_GC_EVERY_BYTES (all transfers together) runs a scavenge. */
export function streamedBytes(bytes: number): void {
  streamed += bytes;
  if (streamed < YOUNG_GC_EVERY_BYTES) return;
  streamed = 0;
  gc()?.({ type: 'minor', execution: 'sync' });
}

/**
 * Counts external memory (the transfer buffers) in V8's global limit, heap and external memory together, instead
 * of answering every few tens of MiB of it with a full mark-compact ("GC in old space requested"). Measured by
 * bench:convert (a 512 MiB qcow2 -> raw, one round each, load 15-28): 2.9 CPU s and RSS +64.5 MiB with this and
 * the scavenges, 3.6 s and +158.6 MiB with this alone, 7.9 s and +57.4 MiB with the scavenges alone (at 16 MiB),
 * 5.8 s and +102.8 MiB with neither. Set once at start-up (src/main.ts), before anything large is allocated.
 */
export function tuneGcForStreaming(): void {
  setFlagsFromString('--external-memory-accounted-in-global-limit');
}
