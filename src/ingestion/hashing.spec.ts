import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { ChunkPool, isPooled, releaseChunk } from '../storage/chunk-pool';
import { ChunkCoalescer } from './chunk-coalescer';
import { hashThread } from './hash-worker';
import { HashingStream, MAX_HASH_BACKLOG_BYTES, parseChecksum } from './hashing';

const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

describe('HashingStream', () => {
  const data = randomBytes(300_000);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const md5 = createHash('md5').update(data).digest('hex');
  const chunks = () => Readable.from([data.subarray(0, 1), data.subarray(1, 100_000), data.subarray(100_000)]);

  it('computes sha256 (and md5 when asked) and counts bytes while passing data through', async () => {
    const h = new HashingStream({ md5: true });
    const out: Buffer[] = [];
    await pipeline(
      chunks(),
      h,
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c);
          cb();
        },
      }),
    );
    expect(h.digests).toEqual({ size: data.length, sha256, md5 });
    expect(Buffer.concat(out).equals(data)).toBe(true);
    const plain = new HashingStream();
    await pipeline(chunks(), plain, sink());
    expect(plain.digests).toEqual({ size: data.length, sha256 });
  });

  it('verifies an expected checksum at the end, failing the stream on a mismatch', async () => {
    await expect(pipeline(chunks(), new HashingStream({ expected: `sha256:${sha256}` }), sink())).resolves.toBeUndefined();
    await expect(pipeline(chunks(), new HashingStream({ expected: md5.toUpperCase() }), sink())).resolves.toBeUndefined();
    await expect(pipeline(chunks(), new HashingStream({ expected: '0'.repeat(64) }), sink())).rejects.toMatchObject({
      code: 'CHECKSUM_MISMATCH',
      details: { algorithm: 'sha256', actual: sha256 },
    });
    expect(() => new HashingStream({ expected: 'sha256:abc' })).toThrow(expect.objectContaining({ code: 'CHECKSUM_MISMATCH' }));
  });

  it('stops past a maximum size and reports progress', async () => {
    await expect(pipeline(chunks(), new HashingStream({ maxBytes: 1000 }), sink())).rejects.toMatchObject({ code: 'TOO_LARGE' });
    const seen: number[] = [];
    await pipeline(chunks(), new HashingStream({ onProgress: (b) => seen.push(b), progressIntervalMs: 0 }), sink());
    expect(seen[seen.length - 1]).toBe(data.length);
  });

  describe('in the hashing thread', () => {
    it('computes the same digests from pooled chunks, gives each slot back once hashed and written, and reuses it', async () => {
      const big = randomBytes(3 * MAX_HASH_BACKLOG_BYTES + 12345);
      const bigSha = createHash('sha256').update(big).digest('hex');
      const bigMd5 = createHash('md5').update(big).digest('hex');
      const slot = 64 * 1024;
      // in flight at most: the hashing backlog plus the few chunks buffered between the stages
      const inFlight = MAX_HASH_BACKLOG_BYTES / slot + 16;
      const pool = new ChunkPool(slot, inFlight);
      const pieces = () => Readable.from(Array.from({ length: Math.ceil(big.length / 10_000) }, (_, i) => big.subarray(i * 10_000, (i + 1) * 10_000)));
      const h = new HashingStream({ worker: true, md5: true });
      const written: Buffer[] = [];
      let pooled = 0;
      await pipeline(
        pieces(),
        new ChunkCoalescer(slot, 10_000, pool),
        h,
        new Writable({
          // a slow writer, as a disk is: the hashing thread may finish first or last
          write(c: Buffer, _e, cb) {
            if (isPooled(c)) pooled++;
            written.push(Buffer.from(c)); // a copy: the slot is reused once released
            setImmediate(() => {
              releaseChunk(c);
              cb();
            });
          },
        }),
      );
      expect(h.digests).toEqual({ size: big.length, sha256: bigSha, md5: bigMd5 });
      expect(Buffer.concat(written).equals(big)).toBe(true);
      expect(pooled).toBe(written.length);
      // about 400 chunks went through at most the slots in flight at once
      expect(written.length).toBeGreaterThan(2 * inFlight);
      expect(pool.allocated).toBeLessThanOrEqual(inFlight);
      expect(pool.reused).toBe(written.length - pool.allocated);
    });

    it('hashes chunks that are not pooled (copied), checks the expected checksum and the maximum size', async () => {
      const h = new HashingStream({ worker: true, md5: true });
      const out: Buffer[] = [];
      await pipeline(
        chunks(),
        h,
        new Writable({
          write(c: Buffer, _e, cb) {
            out.push(c);
            cb();
          },
        }),
      );
      expect(h.digests).toEqual({ size: data.length, sha256, md5 });
      expect(Buffer.concat(out).equals(data)).toBe(true);
      await expect(pipeline(chunks(), new HashingStream({ worker: true, expected: `sha256:${sha256}` }), sink())).resolves.toBeUndefined();
      await expect(pipeline(chunks(), new HashingStream({ worker: true, expected: md5 }), sink())).resolves.toBeUndefined();
      await expect(pipeline(chunks(), new HashingStream({ worker: true, expected: '0'.repeat(64) }), sink())).rejects.toMatchObject({
        code: 'CHECKSUM_MISMATCH',
        details: { algorithm: 'sha256', actual: sha256 },
      });
      await expect(pipeline(chunks(), new HashingStream({ worker: true, maxBytes: 1000 }), sink())).rejects.toMatchObject({ code: 'TOO_LARGE' });
    });

    it('warms up on a pooled slot at start-up and hashes as before afterwards', async () => {
      const pool = new ChunkPool(64 * 1024, 4);
      const slot = pool.take();
      await expect(hashThread.warm(slot)).resolves.toBeUndefined();
      releaseChunk(slot);
      expect(pool.freeSlots).toBe(1);
      const h = new HashingStream({ worker: true });
      await pipeline(chunks(), h, sink());
      expect(h.digests!.sha256).toBe(sha256);
    });

    it('stops when no hash is open (an application shutting down) and starts again for the next hash', async () => {
      const open = new HashingStream({ worker: true });
      const out = sink();
      open.pipe(out);
      open.write(data.subarray(0, 1000));
      // a hash is open: stop leaves the thread to it
      await hashThread.stop();
      open.end(data.subarray(1000));
      await finished(out);
      expect(open.digests?.sha256).toBe(sha256);
      await hashThread.stop();
      const h = new HashingStream({ worker: true });
      await pipeline(chunks(), h, sink());
      expect(h.digests!.sha256).toBe(sha256);
      await hashThread.stop();
    });

    it('keeps many hashes apart at once', async () => {
      const inputs = Array.from({ length: 6 }, (_, i) => randomBytes(200_000 + i * 77_777));
      const results = await Promise.all(
        inputs.map(async (input) => {
          const h = new HashingStream({ worker: true });
          await pipeline(Readable.from([input.subarray(0, 1000), input.subarray(1000)]), h, sink());
          return h.digests!.sha256;
        }),
      );
      expect(results).toEqual(inputs.map((input) => createHash('sha256').update(input).digest('hex')));
    });
  });

  it('parses checksums as users write them', () => {
    expect(parseChecksum(`SHA256:${'A'.repeat(64)}`)).toEqual({ algorithm: 'sha256', hex: 'a'.repeat(64) });
    expect(parseChecksum(`md5=${'b'.repeat(32)}`)).toEqual({ algorithm: 'md5', hex: 'b'.repeat(32) });
    expect(parseChecksum('c'.repeat(32))).toEqual({ algorithm: 'md5', hex: 'c'.repeat(32) });
    expect(parseChecksum(`md5:${'b'.repeat(64)}`)).toBeNull();
    expect(parseChecksum('xyz')).toBeNull();
  });
});
