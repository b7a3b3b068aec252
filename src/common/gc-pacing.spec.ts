import { constants, PerformanceObserver } from 'node:perf_hooks';
import { collectYoungGarbage } from './gc-pacing';

describe('gc-pacing', () => {
  it('collectYoungGarbage runs one young-generation collection (a scavenge), again on every call', async () => {
    const kinds: number[] = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) kinds.push((e as unknown as { detail: { kind: number } }).detail.kind);
    });
    obs.observe({ entryTypes: ['gc'] });
    try {
      collectYoungGarbage();
      collectYoungGarbage();
      // gc entries are delivered asynchronously
      for (let i = 0; i < 50 && kinds.filter((k) => k === constants.NODE_PERFORMANCE_GC_MINOR).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    } finally {
      obs.disconnect();
    }
    expect(kinds.filter((k) => k === constants.NODE_PERFORMANCE_GC_MINOR).length).toBeGreaterThanOrEqual(2);
  });
});
