import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream, parseChecksum } from './hashing';

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

  it('parses checksums as users write them', () => {
    expect(parseChecksum(`SHA256:${'A'.repeat(64)}`)).toEqual({ algorithm: 'sha256', hex: 'a'.repeat(64) });
    expect(parseChecksum(`md5=${'b'.repeat(32)}`)).toEqual({ algorithm: 'md5', hex: 'b'.repeat(32) });
    expect(parseChecksum('c'.repeat(32))).toEqual({ algorithm: 'md5', hex: 'c'.repeat(32) });
    expect(parseChecksum(`md5:${'b'.repeat(64)}`)).toBeNull();
    expect(parseChecksum('xyz')).toBeNull();
  });
});
