/**
 * Preloaded into a benchmarked service process (NODE_OPTIONS=--require dist/bench/gc-counter.js): writes one
 * line `[bench-gc] major <ms>` to stderr for every full (mark-compact) garbage collection, so a benchmark can
 * count them between two points of the service's output. Minor collections (scavenges) are not printed.
 * BENCH_TRACE_GC=1 turns on V8's --trace-gc as well; BENCH_V8_FLAGS (space-separated) sets other V8 flags.
 * A preload runs in every worker thread too (the hashing thread): a worker's own collections (a heap of a few
 * MiB, apart from the service's) are written as `[bench-gc] worker major <ms>`, which the count leaves out.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { isMainThread } from 'node:worker_threads';

const tag = isMainThread ? 'major' : 'worker major';

// BENCH_TRACE_GC=1: V8's own line per collection too (its reason and the heap sizes), to see why
if (process.env.BENCH_TRACE_GC === '1') setFlagsFromString('--trace-gc');
// BENCH_V8_FLAGS: V8 flags set before the service allocates anything (to compare GC settings)
for (const flag of (process.env.BENCH_V8_FLAGS ?? '').split(' ').filter(Boolean)) setFlagsFromString(flag);

new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) process.stderr.write(`[bench-gc] ${tag} ${e.duration.toFixed(1)}\n`);
  }
}).observe({ entryTypes: ['gc'] });
