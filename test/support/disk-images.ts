import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

const run = (args: string[]): void => {
  execFileSync('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'] });
};

/** Runs `make(dir)` in a fresh temporary directory and reads back the file it names. */
function made(make: (dir: string) => string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-img-'));
  try {
    return readFileSync(make(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let header: Buffer | undefined;
/** A real, empty, standalone qcow2 v3 made by `qemu-img create` (1 GiB virtual, 4 KiB clusters): 16 KiB of metadata. */
export function qcow2Header(): Buffer {
  header ??= made((d) => {
    run(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', join(d, 'e.qcow2'), '1G']);
    return join(d, 'e.qcow2');
  });
  return Buffer.from(header);
}

/**
 * A standalone qcow2 v3 image qemu-img accepts (info and check): a real empty image (qcow2Header) followed by
 * deterministic bytes no cluster refers to, `size` bytes in all (at least the header's 16 KiB).
 */
export function qcow2(size: number, seed = 7): Buffer {
  const h = qcow2Header();
  const b = rawBytes(Math.max(size, h.length), seed);
  h.copy(b, 0);
  return b;
}

export type RealFormat = 'qcow2' | 'raw' | 'vmdk' | 'vmdk-stream' | 'vhd' | 'vhd-fixed' | 'vhdx';

/**
 * A real image made by `qemu-img convert` from `data` (deterministic bytes, `dataBytes` of them) into a disk of
 * `virtualBytes` (default: the data rounded up to 1 MiB).
 */
export function realImage(format: RealFormat, opts: { dataBytes?: number; virtualBytes?: number; seed?: number } = {}): Buffer {
  const dataBytes = opts.dataBytes ?? 1024 * 1024;
  const virtualBytes = opts.virtualBytes ?? Math.ceil(dataBytes / (1024 * 1024)) * 1024 * 1024;
  return made((d) => {
    const src = join(d, 'src.raw');
    const data = rawBytes(dataBytes, opts.seed ?? 11);
    writeFileSync(src, data);
    truncateSync(src, virtualBytes);
    const out = join(d, 'out.img');
    const [fmt, o] = (
      {
        qcow2: ['qcow2', []],
        raw: ['raw', []],
        vmdk: ['vmdk', ['-o', 'subformat=monolithicSparse']],
        'vmdk-stream': ['vmdk', ['-o', 'subformat=streamOptimized']],
        vhd: ['vpc', ['-o', 'subformat=dynamic']],
        'vhd-fixed': ['vpc', ['-o', 'subformat=fixed']],
        vhdx: ['vhdx', []],
      } as Record<RealFormat, [string, string[]]>
    )[format];
    run(['convert', '-q', '-f', 'raw', '-O', fmt, ...o, src, out]);
    return out;
  });
}

/**
 * A VMDK delta disk qemu follows to `parent`: a real monolithicSparse VMDK whose descriptor at sector 1 names a
 * parent, while its header's descriptorOffset says `headerSector` (0, or past the first 64 KiB), which is not where
 * qemu reads it.
 */
export function vmdkDeltaHiddenDescriptor(headerSector: bigint, parent = '/etc/passwd'): Buffer {
  const b = realImage('vmdk');
  const at = 512;
  const size = 20 * 512;
  const text = b
    .toString('latin1', at, at + size)
    .replace(/\0+$/, '')
    .replace('parentCID=ffffffff', `parentCID=12345678\nparentFileNameHint="${parent}"`);
  b.fill(0, at, at + size);
  b.write(text, at, 'latin1');
  b.writeBigUInt64LE(headerSector, 28);
  return b;
}

/**
 * A monolithicFlat VMDK descriptor whose only extent is `extent`, with a long run of comment lines between its
 * `version=1` line and its createType and extent lines (past the first KiB), padded with zeros to `size`. qemu's probe
 * calls it a VMDK; declared raw, it would be a raw disk to the service and the extent file to a probing hypervisor.
 */
export function vmdkFlatDescriptorLongComments(extent = '/etc/passwd', size = 128 * 1024): Buffer {
  const comments = Array.from({ length: 40 }, (_, i) => `# padding comment line ${String(i).padStart(3, '0')} ${'.'.repeat(40)}\n`).join('');
  const text = `version=1\nCID=fffffffe\nparentCID=ffffffff\n${comments}createType="monolithicFlat"\n\n# Extent description\nRW 8 FLAT "${extent}" 0\n`;
  const b = Buffer.alloc(Math.max(size, text.length));
  b.write(text, 0, 'latin1');
  return b;
}

/** A real qcow2 with data, cut to `keep` bytes: its header is fine, `qemu-img check` finds clusters past the end. */
export function qcow2CutShort(keep = 1024 * 1024): Buffer {
  return realImage('qcow2', { dataBytes: 4 * 1024 * 1024, seed: 5 }).subarray(0, keep);
}

/** A real empty qcow2 of `virtual` (qemu-img size syntax, default 1 PiB): 16 MiB of L1 table for 1 PiB. */
export function qcow2Virtual(virtual = '1P'): Buffer {
  return made((d) => {
    run(['create', '-q', '-f', 'qcow2', join(d, 'v.qcow2'), virtual]);
    return join(d, 'v.qcow2');
  });
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
