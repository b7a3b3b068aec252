import { createHash } from 'node:crypto';

/** Deterministic bytes that do not look like any image format (so "raw"). */
export function rawBytes(size: number, seed = 42): Buffer {
  const b = Buffer.alloc(size);
  let n = seed >>> 0;
  for (let i = 0; i + 4 <= size; i += 4) {
    n = (Math.imul(n, 1103515245) + 12345) >>> 0;
    b.writeUInt32LE(n, i);
  }
  // a raw disk must not start with another format's magic
  b.write('RAW!', 0, 'latin1');
  return b;
}

/** A standalone qcow2 v3 image: a valid header (no backing file, no external data file) followed by data. */
export function qcow2(size: number, seed = 7): Buffer {
  const b = rawBytes(Math.max(size, 4096), seed);
  b.fill(0, 0, 4096);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(3, 4); // version
  b.writeBigUInt64BE(0n, 8); // backing file offset
  b.writeUInt32BE(0, 16); // backing file size
  b.writeUInt32BE(16, 20); // cluster bits
  b.writeBigUInt64BE(BigInt(1024 ** 3), 24); // virtual size
  b.writeUInt32BE(0, 32); // crypt method
  b.writeBigUInt64BE(0n, 72); // incompatible features
  b.writeUInt32BE(104, 100); // header length; extensions start here and end at once (type 0)
  return b;
}

/** A qcow2 naming a backing file: the kind of image the service must refuse. */
export function qcow2WithBacking(backing = 'backing.img', size = 256 * 1024): Buffer {
  const b = Buffer.alloc(size);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(2, 4);
  b.writeBigUInt64BE(512n, 8);
  b.writeUInt32BE(backing.length, 16);
  b.write(backing, 512);
  return b;
}

/** An ISO 9660 image: the primary volume descriptor signature at 32769. */
export function iso(size = 256 * 1024, seed = 9): Buffer {
  const b = rawBytes(Math.max(size, 0x9000), seed);
  b.fill(0, 0, 0x8800);
  b.writeUInt8(1, 0x8000);
  b.write('CD001', 0x8001, 'latin1');
  return b;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
