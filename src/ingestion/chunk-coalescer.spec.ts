import { PassThrough } from 'node:stream';
import { ChunkPool, isPooled, releaseChunk } from '../storage/chunk-pool';
import { ChunkCoalescer } from './chunk-coalescer';

const collect = (s: ChunkCoalescer) => {
  const out: Buffer[] = [];
  s.on('data', (c: Buffer) => out.push(c));
  return out;
};

describe('ChunkCoalescer', () => {
  it('gathers small chunks into chunks of the size, and passes the rest at the end', async () => {
    const c = new ChunkCoalescer(10, 10_000);
    const out = collect(c);
    for (let i = 0; i < 25; i++) c.write(Buffer.from([i]));
    c.end();
    await new Promise((r) => c.on('end', r));
    expect(out.map((b) => b.length)).toEqual([10, 10, 5]);
    expect(Buffer.concat(out)).toEqual(Buffer.from([...Array(25).keys()]));
  });

  it('passes a big chunk through untouched', async () => {
    const c = new ChunkCoalescer(4, 10_000);
    const out = collect(c);
    const big = Buffer.alloc(9, 1);
    c.end(big);
    await new Promise((r) => c.on('end', r));
    expect(out).toEqual([big]);
  });

  it('does not hold a slow source back longer than its hold time', async () => {
    const src = new PassThrough();
    const c = new ChunkCoalescer(1024, 20);
    const out = collect(c);
    src.pipe(c);
    src.write(Buffer.from('abc'));
    await new Promise((r) => setTimeout(r, 80));
    expect(Buffer.concat(out).toString()).toBe('abc');
    src.end(Buffer.from('def'));
    await new Promise((r) => c.on('end', r));
    expect(Buffer.concat(out).toString()).toBe('abcdef');
  });

  it('a prefilled pool serves its first chunks from the free slots it made, up to the number it keeps', () => {
    const pool = new ChunkPool(4, 3);
    pool.prefill(5);
    expect(pool.allocated).toBe(3);
    expect(pool.freeSlots).toBe(3);
    pool.prefill(3); // already there: nothing more
    expect(pool.allocated).toBe(3);
    const a = pool.take();
    expect([...a]).toEqual([0, 0, 0, 0]);
    expect(pool.reused).toBe(1);
    expect(pool.freeSlots).toBe(2);
    releaseChunk(a);
    expect(pool.freeSlots).toBe(3);
    // one slot in use: prefill adds to the free ones, it does not count the one taken
    const b = pool.take();
    pool.prefill(3);
    expect(pool.freeSlots).toBe(3);
    expect(pool.allocated).toBe(4);
    releaseChunk(b);
    expect(pool.freeSlots).toBe(3);
  });

  it('with a pool, copies everything into reused slots, big chunks too, and a slot given back serves the next chunk', async () => {
    const pool = new ChunkPool(4, 8);
    const c = new ChunkCoalescer(4, 10_000, pool);
    const seen: string[] = [];
    c.on('data', (b: Buffer) => {
      expect(isPooled(b)).toBe(true);
      seen.push(b.toString());
      releaseChunk(b); // written: the slot is free again
    });
    c.write(Buffer.from('ab'));
    c.write(Buffer.from('cdefghij')); // a big chunk: copied across slots
    c.end(Buffer.from('k'));
    await new Promise((r) => c.on('end', r));
    expect(seen).toEqual(['abcd', 'efgh', 'ijk']);
    expect(pool.allocated).toBe(1);
    expect(pool.reused).toBe(2);
    expect(() => new ChunkCoalescer(8, 10, pool)).toThrow(/4 bytes/);
  });
});
