/**
 * Preloaded into a benchmarked service process (NODE_OPTIONS=--require dist/bench/gc-counter.js): writes one
 * line `[bench-gc] major <ms>` to stderr for every full (mark-compact) garbage collection, so a benchmark can
 * count them between two points of the service's output. Minor collections (scavenges) are not printed.
 * BENCH_TRACE_GC=1 turns on V8's --trace-gc as well.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';

// BENCH_TRACE_GC=1: V8's own line per collection too (its reason and the heap sizes), to see why
if (process.env.BENCH_TRACE_GC === '1') setFlagsFromString('--trace-gc');

new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) process.stderr.write(`[bench-gc] major ${e.duration.toFixed(1)}\n`);
  }
}).observe({ entryTypes: ['gc'] });
