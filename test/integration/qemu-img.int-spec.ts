import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DiskFormat } from '../../src/ingestion/format-sniffer';
import { IngestError } from '../../src/ingestion/ingestion.errors';
import { judgeInfo, QemuImg, QemuImgLimits, supportsDirectIo, withRangeRelay } from '../../src/ingestion/qemu-img';
import { FsStorage } from '../../src/storage/fs-storage';
import { MinioStorage } from '../../src/storage/minio-storage';
import { ObjectStorage } from '../../src/storage/object-storage';
import {
  iso,
  qcow2,
  qcow2CutShort,
  qcow2Virtual,
  rawBytes,
  realImage,
  RealFormat,
  vmdkDeltaHiddenDescriptor,
  vmdkFlatDescriptorLongComments,
} from '../support/disk-images';
import { startS3Server, S3TestServer } from '../support/s3-server';

/**
 * qemu-img as the referee (src/ingestion/qemu-img.ts), with the real qemu-img on real images made by qemu-img and
 * edited bytes: on a local file and through the loopback Range relay over both stores, under its limits.
 */

const LIMITS: QemuImgLimits = { binary: 'qemu-img', timeoutMs: 20_000, cpuSeconds: 30, maxMemoryMb: 1024 };
const qemu = new QemuImg(LIMITS);

const refusal = async (p: Promise<unknown>): Promise<{ code: string; message: string }> => {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof IngestError)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error('expected a refusal');
};

const ACCEPTED: [DiskFormat, RealFormat][] = [
  ['qcow2', 'qcow2'],
  ['raw', 'raw'],
  ['vmdk', 'vmdk'],
  ['vmdk', 'vmdk-stream'],
  ['vhd', 'vhd'],
  ['vhd', 'vhd-fixed'],
  ['vhdx', 'vhdx'],
];

describe('qemu-img as the referee', () => {
  let dir: string;
  const write = (name: string, b: Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, b);
    return p;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-qemu-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds it installed, with the http driver the S3 store needs', async () => {
    const found = await qemu.probe();
    expect(found.version).toMatch(/^\d+\.\d+/);
    expect(found.drivers).toEqual(expect.arrayContaining(['qcow2', 'vmdk', 'vpc', 'vhdx', 'raw', 'http']));
    await expect(new QemuImg({ ...LIMITS, binary: join(dir, 'no-such-qemu-img') }).probe()).rejects.toThrow();
  });

  it.each(ACCEPTED)('accepts a real standalone %s image (%s) and reports its virtual size', async (declared, made) => {
    const file = write(`ok-${made}`, realImage(made, { dataBytes: 3 * 1024 * 1024 + 5, virtualBytes: 8 * 1024 * 1024 }));
    const info = await qemu.inspect(declared, { file });
    // a fixed VHD is rounded to its CHS geometry by qemu; every other format keeps the size exactly
    if (made === 'vhd-fixed' || made === 'vhd') expect(info.virtualSizeBytes).toBeGreaterThanOrEqual(8 * 1024 * 1024 - 512 * 1024);
    else expect(info.virtualSizeBytes).toBe(8 * 1024 * 1024);
    expect(info.actualSizeBytes).toEqual(expect.any(Number));
  });

  it('accepts the service test images (qcow2 with trailing bytes, ISO)', async () => {
    expect(await qemu.inspect('qcow2', { file: write('t.qcow2', qcow2(3 * 1024 * 1024)) })).toMatchObject({ format: 'qcow2', virtualSizeBytes: 1024 ** 3 });
    expect(await qemu.inspect('iso', { file: write('t.iso', iso(1024 * 1024)) })).toMatchObject({ format: 'raw', virtualSizeBytes: 1024 * 1024 });
  });

  it('refuses what qemu itself would follow or cannot read', async () => {
    const base = write('base.qcow2', realImage('qcow2'));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', join(dir, 'overlay.qcow2')]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'data.raw')}`, join(dir, 'external.qcow2'), '1M']);
    const cases: [string, DiskFormat, string, string, RegExp][] = [
      ['overlay', 'qcow2', join(dir, 'overlay.qcow2'), 'FORMAT_UNSAFE', /backing file \(".*base\.qcow2"\)/],
      ['data file', 'qcow2', join(dir, 'external.qcow2'), 'FORMAT_UNSAFE', /external data file/],
      ['delta at sector 1, header says 0', 'vmdk', write('d0.vmdk', vmdkDeltaHiddenDescriptor(0n)), 'FORMAT_UNSAFE', /backing file \("\/etc\/passwd"\)/],
      ['delta at sector 1, header says 129', 'vmdk', write('d129.vmdk', vmdkDeltaHiddenDescriptor(129n)), 'FORMAT_UNSAFE', /\/etc\/passwd/],
      ['flat descriptor', 'vmdk', write('flat.vmdk', vmdkFlatDescriptorLongComments()), 'FORMAT_UNSUPPORTED', /monolithicFlat/],
      ['qcow2 cut short', 'qcow2', write('cut.qcow2', qcow2CutShort()), 'IMAGE_CORRUPT', /corruption/],
      ['raw declared qcow2', 'qcow2', write('r.raw', rawBytes(1024 * 1024)), 'INSPECTION_FAILED', /qcow2/],
      ['qcow2 declared vmdk', 'vmdk', write('q.qcow2', realImage('qcow2')), 'INSPECTION_FAILED', /./],
    ];
    for (const [what, declared, file, code, reason] of cases) {
      expect({ what, ...(await refusal(qemu.inspect(declared, { file }))) }).toEqual({ what, code, message: expect.stringMatching(reason) });
    }
  });

  it('refuses an answer naming another format, a backing file, data file or foreign extents (Glance rules)', () => {
    const ok = {
      format: 'vmdk',
      'virtual-size': 1024,
      filename: '/x',
      'format-specific': { type: 'vmdk', data: { 'create-type': 'monolithicSparse', extents: [{ filename: '/x' }] } },
    };
    expect(() => judgeInfo('vmdk', ok, { file: '/x' })).not.toThrow();
    const bad: [DiskFormat, Record<string, unknown>, string][] = [
      ['vmdk', { ...ok, format: 'raw' }, 'FORMAT_MISMATCH'],
      ['vmdk', { ...ok, 'backing-filename': '/etc/shadow' }, 'FORMAT_UNSAFE'],
      [
        'vmdk',
        { ...ok, 'format-specific': { data: { 'create-type': 'monolithicSparse', extents: [{ filename: '/x' }, { filename: '/dev/sda' }] } } },
        'FORMAT_UNSAFE',
      ],
      ['vmdk', { ...ok, 'format-specific': { data: { 'create-type': 'monolithicSparse', extents: [{ filename: '/etc/passwd' }] } } }, 'FORMAT_UNSAFE'],
      ['vmdk', { ...ok, 'format-specific': { data: { 'create-type': 'vmfs', extents: [{ filename: '/x' }] } } }, 'FORMAT_UNSUPPORTED'],
      ['vmdk', { ...ok, 'format-specific': { data: { 'create-type': 'monolithicSparse', 'parent-cid': 1, extents: [{ filename: '/x' }] } } }, 'FORMAT_UNSAFE'],
      ['qcow2', { format: 'qcow2', 'virtual-size': 1, 'format-specific': { data: { 'data-file': '/var/lib/x' } } }, 'FORMAT_UNSAFE'],
      ['qcow2', { format: 'qcow2', 'virtual-size': 1, 'format-specific': { data: { corrupt: true } } }, 'IMAGE_CORRUPT'],
      ['qcow2', { format: 'qcow2' }, 'FORMAT_UNSUPPORTED'],
      ['vhd', { format: 'raw', 'virtual-size': 1 }, 'FORMAT_MISMATCH'],
    ];
    for (const [declared, info, code] of bad) {
      let got: string | undefined;
      try {
        judgeInfo(declared, info, { file: '/x' });
      } catch (e) {
        got = (e as IngestError).code;
      }
      expect({ info, got }).toEqual({ info, got: code });
    }
  });

  it('stops a qemu-img that hangs (a FIFO nobody writes) at its wall-clock limit, with its process group', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const short = new QemuImg({ ...LIMITS, timeoutMs: 1500 });
    const r = await refusal(short.inspect('raw', { file: fifo }));
    expect(r).toEqual({
      code: 'INSPECTION_LIMIT_EXCEEDED',
      message: expect.stringMatching(/did not finish within 1500 ms and was stopped \(QEMU_IMG_TIMEOUT_MS\)/),
    });
    // nothing of it is left running
    const left = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(fifo));
    expect(left).toEqual([]);
  });

  it('refuses an image when qemu-img exceeds its address-space limit', async () => {
    const tiny = new QemuImg({ ...LIMITS, maxMemoryMb: 16 });
    const r = await refusal(tiny.inspect('qcow2', { file: write('m.qcow2', realImage('qcow2')) }));
    expect(r).toEqual({
      code: expect.stringMatching(/^INSPECTION_(FAILED|LIMIT_EXCEEDED)$/),
      message: expect.stringMatching(/qemu-img info (ended with SIGABRT|ran out of memory)|could not read/),
    });
  });

  describe('qemu-img convert', () => {
    const MiB = 1024 * 1024;
    /** The guest-visible bytes of an image, as qemu reads them (converted to raw by qemu-img itself). */
    const guestBytes = (fmt: string, file: string): Buffer => {
      const out = `${file}.guest.raw`;
      execFileSync('qemu-img', ['convert', '-q', '-f', fmt, '-O', 'raw', file, out]);
      return readFileSync(out);
    };

    it('converts qcow2 to raw and a streamOptimized VMDK to qcow2: qemu-img compare finds them identical, the result is judged like an upload, progress reaches 1', async () => {
      const cases: { from: DiskFormat; made: RealFormat; qfmt: string; to: 'raw' | 'qcow2' }[] = [
        { from: 'qcow2', made: 'qcow2', qfmt: 'qcow2', to: 'raw' },
        { from: 'vmdk', made: 'vmdk-stream', qfmt: 'vmdk', to: 'qcow2' },
        { from: 'vhd', made: 'vhd', qfmt: 'vpc', to: 'raw' },
      ];
      for (const c of cases) {
        const src = write(`conv-${c.made}`, realImage(c.made, { dataBytes: 3 * MiB, virtualBytes: 8 * MiB, seed: 5 }));
        const out = join(dir, `conv-${c.made}.${c.to}`);
        const seen: number[] = [];
        await qemu.convert(c.from, { file: src }, { file: out, format: c.to }, { onProgress: (f) => seen.push(f) });
        expect({ case: c.made, last: seen[seen.length - 1], rising: seen.every((f, i) => i === 0 || f >= seen[i - 1]) }).toEqual({
          case: c.made,
          last: 1,
          rising: true,
        });
        expect(await qemu.compare({ format: c.from, target: { file: src } }, { format: c.to, target: { file: out } })).toBe(true);
        // the result passes the referee as the format it now is, with the source's virtual size (a VHD's is rounded to its geometry)
        const { virtualSizeBytes } = await qemu.inspect(c.from, { file: src });
        expect(virtualSizeBytes).toBeGreaterThanOrEqual(8 * MiB);
        expect(await qemu.inspect(c.to, { file: out })).toMatchObject({ format: c.to, virtualSizeBytes });
        // the guest sees the same bytes, read back independently
        const guest = guestBytes(c.to, out);
        expect(guest.equals(guestBytes(c.qfmt, src))).toBe(true);
        expect(guest.subarray(0, 3 * MiB).equals(rawBytes(3 * MiB, 5))).toBe(true);
      }
      // compare tells a difference
      const other = write('conv-other.qcow2', realImage('qcow2', { dataBytes: 3 * MiB, virtualBytes: 8 * MiB, seed: 6 }));
      expect(await qemu.compare({ format: 'qcow2', target: { file: other } }, { format: 'raw', target: { file: join(dir, 'conv-qcow2.raw') } })).toBe(false);
    });

    it('writes the result with O_DIRECT (-t none) where the filesystem allows it, with the same guest bytes; the probe says what qemu-img finds', async () => {
      // the repository's own filesystem (ext4 or xfs here and in CI) takes O_DIRECT
      const onDisk = mkdtempSync(join(process.cwd(), '.direct-io-'));
      // tmpfs: O_DIRECT only since Linux 6.6
      const shm = mkdtempSync('/dev/shm/hcm-direct-io-');
      try {
        expect(await supportsDirectIo(onDisk)).toBe(true);
        // the probe leaves nothing behind
        expect(readdirSync(onDisk)).toEqual([]);
        const src = write('direct-src.qcow2', realImage('qcow2', { dataBytes: 3 * MiB, virtualBytes: 8 * MiB, seed: 9 }));
        for (const to of ['raw', 'qcow2'] as const) {
          const out = join(onDisk, `direct.${to}`);
          await qemu.convert('qcow2', { file: src }, { file: out, format: to }, { directOutput: true });
          expect(await qemu.compare({ format: 'qcow2', target: { file: src } }, { format: to, target: { file: out } })).toBe(true);
          expect(await qemu.inspect(to, { file: out })).toMatchObject({ format: to, virtualSizeBytes: 8 * MiB });
        }
        // where the probe says no, qemu-img cannot write with -t none either (and the service converts through the page cache)
        const shmDirect = await supportsDirectIo(shm);
        const onShm = qemu.convert('qcow2', { file: src }, { file: join(shm, 'direct.raw'), format: 'raw' }, { directOutput: true });
        if (shmDirect) await expect(onShm).resolves.toBeUndefined();
        else expect((await refusal(onShm)).code).toBe('CONVERSION_FAILED');
        // a folder that is not there: no
        expect(await supportsDirectIo(join(onDisk, 'missing'))).toBe(false);
      } finally {
        rmSync(onDisk, { recursive: true, force: true });
        rmSync(shm, { recursive: true, force: true });
      }
    });

    it('refuses with CONVERSION_FAILED when qemu-img cannot convert, names limits it ran into, and stops on abort without leaving qemu-img running', async () => {
      const notQcow2 = write('conv-bad.qcow2', rawBytes(MiB));
      const bad = await refusal(qemu.convert('qcow2', { file: notQcow2 }, { file: join(dir, 'conv-bad.raw'), format: 'raw' }));
      expect(bad).toEqual({ code: 'CONVERSION_FAILED', message: expect.stringMatching(/^qemu-img could not convert the qcow2 image to raw \(exit 1\): /) });
      await expect(qemu.convert('raw', { file: notQcow2 }, { file: 'relative.raw', format: 'raw' })).rejects.toThrow(/absolute path/);
      // a FIFO nobody writes: the conversion hangs until its own wall clock (not the inspection's) stops it
      const fifo = join(dir, 'conv-fifo');
      execFileSync('mkfifo', [fifo]);
      const timed = await refusal(qemu.convert('raw', { file: fifo }, { file: join(dir, 'conv-fifo.qcow2'), format: 'qcow2' }, { timeoutMs: 1200 }));
      expect(timed).toEqual({
        code: 'INSPECTION_LIMIT_EXCEEDED',
        message: expect.stringMatching(/qemu-img convert did not finish within 1200 ms and was stopped; /),
      });
      const ac = new AbortController();
      const stopped = qemu.convert('raw', { file: fifo }, { file: join(dir, 'conv-fifo2.qcow2'), format: 'qcow2' }, { signal: ac.signal });
      setImmediate(() => ac.abort());
      expect(await refusal(stopped)).toEqual({ code: 'ABORTED', message: expect.stringMatching(/cancelled/) });
      const left = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(fifo));
      expect(left).toEqual([]);
    });
  });

  describe.each(['fs', 'minio'])('through the loopback Range relay over the %s store', (driver) => {
    let s3: S3TestServer | undefined;
    let storage: ObjectStorage;
    beforeAll(async () => {
      if (driver === 'minio') {
        s3 = await startS3Server();
        storage = new MinioStorage({
          endPoint: '127.0.0.1',
          port: s3.port,
          useSSL: false,
          accessKey: s3.accessKey,
          secretKey: s3.secretKey,
          bucket: 'qemu-relay',
          region: 'us-east-1',
          partSizeBytes: 5 * 1024 * 1024,
        });
      } else {
        storage = new FsStorage(join(dir, 'store'));
      }
      await storage.init();
    });
    afterAll(async () => s3?.close());

    const store = async (key: string, b: Buffer) => {
      await storage.putStream(key, Readable.from([b]), { sizeHint: b.length });
      return b.length;
    };

    it('judges a stored qcow2 without copying it: info and check through ranges', async () => {
      const size = await store('images/a/disk', realImage('qcow2', { dataBytes: 2 * 1024 * 1024 }));
      const info = await withRangeRelay(storage, 'images/a/disk', size, (url) => qemu.inspect('qcow2', { url }));
      expect(info).toMatchObject({ format: 'qcow2', virtualSizeBytes: 2 * 1024 * 1024 });
      const vmdkSize = await store('images/b/disk', realImage('vmdk-stream'));
      expect(await withRangeRelay(storage, 'images/b/disk', vmdkSize, (url) => qemu.inspect('vmdk', { url }))).toMatchObject({ format: 'vmdk' });
    });

    it('refuses over the relay as on a file', async () => {
      const cut = await store('images/c/disk', qcow2CutShort());
      expect(await refusal(withRangeRelay(storage, 'images/c/disk', cut, (url) => qemu.inspect('qcow2', { url })))).toMatchObject({ code: 'IMAGE_CORRUPT' });
      const delta = await store('images/d/disk', vmdkDeltaHiddenDescriptor(0n));
      expect(await refusal(withRangeRelay(storage, 'images/d/disk', delta, (url) => qemu.inspect('vmdk', { url })))).toMatchObject({ code: 'FORMAT_UNSAFE' });
      const huge = await store('images/e/disk', qcow2Virtual('1P'));
      expect(await withRangeRelay(storage, 'images/e/disk', huge, (url) => qemu.inspect('qcow2', { url }))).toMatchObject({ virtualSizeBytes: 1024 ** 5 });
    });

    it('converts a stored image read through the relay (nothing copied first) into a local file', async () => {
      const src = realImage('vmdk-stream', { dataBytes: 2 * 1024 * 1024, virtualBytes: 4 * 1024 * 1024, seed: 3 });
      const size = await store('images/g/disk', src);
      const out = join(dir, `relay-${driver}.qcow2`);
      await withRangeRelay(storage, 'images/g/disk', size, (url) => qemu.convert('vmdk', { url }, { file: out, format: 'qcow2' }));
      expect(await qemu.compare({ format: 'vmdk', target: { file: write(`relay-${driver}.vmdk`, src) } }, { format: 'qcow2', target: { file: out } })).toBe(
        true,
      );
      expect(await qemu.inspect('qcow2', { file: out })).toMatchObject({ virtualSizeBytes: 4 * 1024 * 1024 });
    });

    it('answers only its own random path on loopback', async () => {
      const size = await store('images/f/disk', rawBytes(4096));
      await withRangeRelay(storage, 'images/f/disk', size, async (url) => {
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}$/);
        expect((await fetch(`${url}x`)).status).toBe(404);
        expect((await fetch(new URL(url).origin + '/')).status).toBe(404);
        const part = await fetch(url, { headers: { range: 'bytes=10-19' } });
        expect(part.status).toBe(206);
        expect(Buffer.from(await part.arrayBuffer()).equals(rawBytes(4096).subarray(10, 20))).toBe(true);
      });
    });
  });
});
