import { PassThrough } from 'node:stream';
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
});
