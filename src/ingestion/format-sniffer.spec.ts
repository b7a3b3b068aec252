import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IngestError } from './ingestion.errors';
import { checkHead, checkVhdFooter, DiskFormat, FormatCheckStream, inspectVhdx, SNIFF_HEAD_BYTES, verifyStored } from './format-sniffer';

// ---- crafted images -------------------------------------------------------------------------------

function qcow2(
  opts: { version?: number; backingFile?: string; incompatible?: bigint; crypt?: number; extensions?: { type: number; data: Buffer }[] } = {},
): Buffer {
  const version = opts.version ?? 3;
  const b = Buffer.alloc(64 * 1024);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(version, 4);
  b.writeUInt32BE(16, 20); // cluster_bits
  b.writeBigUInt64BE(10n * 1024n ** 3n, 24); // virtual size
  b.writeUInt32BE(opts.crypt ?? 0, 32);
  const headerLength = version === 3 ? 112 : 72;
  if (version === 3) {
    b.writeBigUInt64BE(opts.incompatible ?? 0n, 72);
    b.writeUInt32BE(4, 96); // refcount_order
    b.writeUInt32BE(headerLength, 100);
  }
  let at = headerLength;
  for (const ext of opts.extensions ?? []) {
    b.writeUInt32BE(ext.type, at);
    b.writeUInt32BE(ext.data.length, at + 4);
    ext.data.copy(b, at + 8);
    at += 8 + Math.ceil(ext.data.length / 8) * 8;
  }
  b.writeUInt32BE(0, at); // end of extensions
  if (opts.backingFile) {
    const off = 1024;
    b.write(opts.backingFile, off, 'utf8');
    b.writeBigUInt64BE(BigInt(off), 8);
    b.writeUInt32BE(Buffer.byteLength(opts.backingFile), 16);
  }
  return b;
}

function vmdkSparse(descriptor: string): Buffer {
  const b = Buffer.alloc(64 * 1024);
  b.write('KDMV', 0, 'latin1');
  b.writeUInt32LE(1, 4);
  b.writeBigUInt64LE(2097152n, 12); // capacity in sectors
  b.writeBigUInt64LE(128n, 20); // grain size
  b.writeBigUInt64LE(1n, 28); // descriptor at sector 1
  b.writeBigUInt64LE(20n, 36); // 20 sectors
  b.write(descriptor, 512, 'latin1');
  return b;
}

const monolithicDescriptor = (extra = '', createType = 'monolithicSparse', extents = 'RW 2097152 SPARSE "disk.vmdk"') =>
  `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n${extra}createType="${createType}"\n\n# Extent description\n${extents}\n`;

function vhdFooter(type: number): Buffer {
  const f = Buffer.alloc(512);
  f.write('conectix', 0, 'latin1');
  f.writeUInt32BE(2, 8); // features
  f.writeUInt32BE(0x00010000, 12); // version
  f.writeUInt32BE(type, 60);
  return f;
}

function iso(sig = 'CD001', at = 0x8001): Buffer {
  const b = Buffer.alloc(64 * 1024);
  b[at - 1] = 1;
  b.write(sig, at, 'latin1');
  return b;
}

const raw = (): Buffer => {
  const b = Buffer.alloc(64 * 1024);
  b[510] = 0x55; // an MBR boot signature
  b[511] = 0xaa;
  return b;
};

// ---- checkHead --------------------------------------------------------------------------------

describe('checkHead', () => {
  it('accepts each format declared correctly', () => {
    const cases: [DiskFormat, Buffer][] = [
      ['qcow2', qcow2()],
      ['qcow2', qcow2({ version: 2 })],
      ['vmdk', vmdkSparse(monolithicDescriptor())],
      ['vmdk', vmdkSparse(monolithicDescriptor('', 'streamOptimized'))],
      ['vhdx', Buffer.concat([Buffer.from('vhdxfile'), Buffer.alloc(1000)])],
      ['vhd', Buffer.concat([vhdFooter(3), Buffer.alloc(1000)])],
      ['iso', iso()],
      ['iso', iso('BEA01')],
      ['raw', raw()],
      ['raw', iso()],
    ];
    for (const [declared, head] of cases) {
      expect({ declared, result: checkHead(declared, head) }).toEqual({ declared, result: expect.objectContaining({ ok: true }) });
    }
  });

  it('refuses a qcow2 that names a backing file, and says which', () => {
    const r = checkHead('qcow2', qcow2({ backingFile: '/etc/shadow' }));
    expect(r).toEqual({ ok: false, code: 'FORMAT_UNSAFE', detected: 'qcow2', reason: expect.stringContaining('backing file ("/etc/shadow")') });
    // also when declared as something else: the danger is in the bytes
    expect(checkHead('raw', qcow2({ backingFile: 'base.qcow2' }))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
    // a v2 image too
    expect(checkHead('qcow2', qcow2({ version: 2, backingFile: 'x' }))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
  });

  it('refuses a qcow2 with an external data file (incompatible bit 2 or the header extension)', () => {
    expect(checkHead('qcow2', qcow2({ incompatible: 1n << 2n }))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSAFE',
      reason: expect.stringContaining('external data file'),
    });
    const ext = { type: 0x44415441, data: Buffer.from('/var/lib/other-tenant.raw') };
    expect(checkHead('qcow2', qcow2({ extensions: [{ type: 0x6803f857, data: Buffer.alloc(48) }, ext] }))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
  });

  it('refuses corrupt, encrypted, unknown-feature and unknown-version qcow2 images', () => {
    expect(checkHead('qcow2', qcow2({ incompatible: 1n << 1n }))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSUPPORTED',
      reason: expect.stringContaining('corrupt'),
    });
    expect(checkHead('qcow2', qcow2({ crypt: 2 }))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED', reason: expect.stringContaining('encrypted') });
    expect(checkHead('qcow2', qcow2({ incompatible: 1n << 9n }))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
    expect(checkHead('qcow2', qcow2({ version: 4 }))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
    expect(checkHead('qcow2', qcow2().subarray(0, 40))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
    // the dirty bit (0) is harmless
    expect(checkHead('qcow2', qcow2({ incompatible: 1n }))).toMatchObject({ ok: true });
  });

  it('refuses a declared format the bytes contradict, naming what they are', () => {
    expect(checkHead('raw', qcow2())).toEqual({
      ok: false,
      code: 'FORMAT_MISMATCH',
      detected: 'qcow2',
      reason: 'The file was declared raw but its content is a qcow2 image',
    });
    expect(checkHead('qcow2', raw())).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH', detected: 'unknown' });
    expect(checkHead('iso', qcow2())).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH' });
    expect(checkHead('iso', raw())).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH' });
    expect(checkHead('iso', Buffer.from('tiny'))).toMatchObject({ ok: false, reason: expect.stringContaining('too short') });
    expect(checkHead('vmdk', iso())).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH', detected: 'iso' });
    expect(checkHead('vhdx', Buffer.concat([vhdFooter(3), Buffer.alloc(100)]))).toMatchObject({ ok: false, detected: 'vhd' });
    expect(checkHead('raw', Buffer.concat([Buffer.from('vhdxfile'), Buffer.alloc(100)]))).toMatchObject({ ok: false, detected: 'vhdx' });
    expect(checkHead('vhd', qcow2())).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH' });
  });

  it('refuses VMDK descriptors and delta disks that point at other files', () => {
    const descriptorOnly = Buffer.from(monolithicDescriptor('', 'monolithicFlat', 'RW 2097152 FLAT "/etc/shadow" 0'));
    expect(checkHead('vmdk', descriptorOnly)).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE', detected: 'vmdk-descriptor' });
    expect(checkHead('raw', descriptorOnly)).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
    expect(checkHead('vmdk', vmdkSparse(monolithicDescriptor('parentFileNameHint="base.vmdk"\n')))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSAFE',
      reason: expect.stringContaining('base.vmdk'),
    });
    expect(checkHead('vmdk', vmdkSparse(monolithicDescriptor().replace('parentCID=ffffffff', 'parentCID=1234abcd')))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSAFE',
    });
    expect(checkHead('vmdk', vmdkSparse(monolithicDescriptor('', 'monolithicSparse', 'RW 100 SPARSE "a.vmdk"\nRW 100 FLAT "/dev/sda" 0')))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSAFE',
    });
    expect(checkHead('vmdk', vmdkSparse(monolithicDescriptor('', 'twoGbMaxExtentSparse')))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
  });

  it('reads a sparse VMDK descriptor where qemu does (sector 1), whatever the header says', () => {
    const delta = monolithicDescriptor('parentFileNameHint="/etc/passwd"\n').replace('parentCID=ffffffff', 'parentCID=12345678');
    for (const sector of [0n, 129n, 2n]) {
      const b = vmdkSparse(delta);
      b.writeBigUInt64LE(sector, 28);
      for (const declared of ['vmdk', 'raw'] as DiskFormat[]) {
        expect(checkHead(declared, b)).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE', reason: expect.stringContaining('/etc/passwd') });
      }
    }
    // qemu finds parentFileNameHint with strstr: even in a comment
    expect(checkHead('vmdk', vmdkSparse(monolithicDescriptor('# parentFileNameHint="/etc/shadow"\n')))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
    // a clean descriptor at sector 1 but a header pointing elsewhere: refused (we would not read what qemu reads)
    const moved = vmdkSparse(monolithicDescriptor());
    moved.writeBigUInt64LE(0n, 28);
    expect(checkHead('vmdk', moved)).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED', reason: expect.stringContaining('sector 0') });
    // the first file of a split sparse disk (capacity 0): qemu would open the extents its descriptor names
    const split = vmdkSparse(monolithicDescriptor());
    split.writeBigUInt64LE(0n, 12);
    expect(checkHead('vmdk', split)).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
  });

  it('refuses what qemu would probe as a VMDK descriptor, however long the comments before its extents', () => {
    const comments = Array.from({ length: 40 }, (_, i) => `# padding comment line ${i} ..........................................\n`).join('');
    const late = Buffer.from(`version=1\nCID=fffffffe\nparentCID=ffffffff\n${comments}createType="monolithicFlat"\n\nRW 8 FLAT "/etc/passwd" 0\n`);
    expect(late.indexOf('createType')).toBeGreaterThan(1024);
    const early = Buffer.from(`${comments}version=1\n`);
    const keysLate = Buffer.from(`${comments}${comments}createType="monolithicFlat"\nRW 8 FLAT "/etc/passwd" 0\n`);
    for (const b of [late, early, keysLate, Buffer.concat([late, Buffer.alloc(200_000)])]) {
      for (const declared of ['raw', 'vmdk', 'iso', 'vhd'] as DiskFormat[]) {
        expect(checkHead(declared, b.subarray(0, SNIFF_HEAD_BYTES))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE', detected: 'vmdk-descriptor' });
      }
    }
    // plain text that is not a descriptor is raw data
    expect(checkHead('raw', Buffer.from('# a README\nnothing to see here\n'))).toMatchObject({ ok: true });
  });

  it('names the other formats qemu would probe (VMDK3, Bochs, cloop) and does not take them', () => {
    expect(checkHead('raw', Buffer.concat([Buffer.from('COWD'), Buffer.alloc(1000)]))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSUPPORTED',
      detected: 'vmdk3',
    });
    expect(checkHead('vmdk', Buffer.concat([Buffer.from('COWD'), Buffer.alloc(1000)]))).toMatchObject({ ok: false, detected: 'vmdk3' });
    expect(checkHead('raw', Buffer.concat([Buffer.from('Bochs Virtual HD Image'), Buffer.alloc(1000)]))).toMatchObject({ ok: false, detected: 'bochs' });
    expect(checkHead('raw', Buffer.from('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n'))).toMatchObject({
      ok: false,
      detected: 'cloop',
    });
  });

  it('refuses a differencing VHD, and formats the service does not take', () => {
    expect(checkHead('vhd', Buffer.concat([vhdFooter(4), Buffer.alloc(100)]))).toMatchObject({
      ok: false,
      code: 'FORMAT_UNSAFE',
      reason: expect.stringContaining('parent'),
    });
    expect(checkHead('raw', Buffer.from('QED\0' + '\0'.repeat(100), 'latin1'))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED', detected: 'qed' });
    expect(checkHead('raw', Buffer.from('LUKS\xba\xbe' + '\0'.repeat(100), 'latin1'))).toMatchObject({ ok: false, detected: 'luks' });
  });

  it('accepts a declared vhd with no signature at the start, pending the footer', () => {
    expect(checkHead('vhd', raw())).toEqual({ ok: true, detected: 'unknown', needsTail: true });
  });
});

describe('checkVhdFooter / verifyStored / inspectVhdx', () => {
  const fixedVhd = Buffer.concat([raw(), vhdFooter(2)]);
  const reader = (buf: Buffer) => async (offset: number, length: number) => buf.subarray(offset, offset + length);

  it('checks the footer of a fixed VHD (512 or 511 bytes)', async () => {
    expect(checkVhdFooter(fixedVhd.subarray(-512))).toEqual({ ok: true, detected: 'vhd' });
    expect(checkVhdFooter(Buffer.concat([Buffer.alloc(1), vhdFooter(2).subarray(0, 511)]))).toMatchObject({ ok: true });
    expect(checkVhdFooter(Buffer.alloc(512))).toMatchObject({ ok: false, code: 'FORMAT_MISMATCH' });
    expect(checkVhdFooter(vhdFooter(4))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
    expect(await verifyStored('vhd', fixedVhd.length, reader(fixedVhd))).toEqual({ ok: true, detected: 'vhd' });
    expect(await verifyStored('vhd', 100, reader(Buffer.alloc(100)))).toMatchObject({ ok: false });
    expect(await verifyStored('qcow2', 10, reader(Buffer.alloc(10)))).toEqual({ ok: true, detected: 'qcow2' });
  });

  /** A minimal VHDX: region table at 192 KiB pointing at a metadata region at 1 MiB. */
  function vhdx(hasParent: boolean, withLocator = false): Buffer {
    const b = Buffer.alloc(1024 * 1024 + 128 * 1024);
    b.write('vhdxfile', 0, 'latin1');
    const guid = (t: string) => {
      const h = Buffer.from(t.replace(/-/g, ''), 'hex');
      return Buffer.concat([
        Buffer.from(h.subarray(0, 4)).reverse(),
        Buffer.from(h.subarray(4, 6)).reverse(),
        Buffer.from(h.subarray(6, 8)).reverse(),
        h.subarray(8),
      ]);
    };
    const rt = 192 * 1024;
    b.write('regi', rt, 'latin1');
    b.writeUInt32LE(1, rt + 8);
    guid('8B7CA206-4790-4B9A-B8FE-575F050F886E').copy(b, rt + 16);
    b.writeBigUInt64LE(1024n * 1024n, rt + 32);
    b.writeUInt32LE(64 * 1024, rt + 40);
    const md = 1024 * 1024;
    b.write('metadata', md, 'latin1');
    b.writeUInt16LE(withLocator ? 2 : 1, md + 10);
    guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B').copy(b, md + 32);
    b.writeUInt32LE(0x10000, md + 48); // offset of the item in the region
    b.writeUInt32LE(8, md + 52);
    b.writeUInt32LE(32 * 1024 * 1024, md + 0x10000); // block size
    b.writeUInt32LE(hasParent ? 2 : 0, md + 0x10000 + 4);
    if (withLocator) guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C').copy(b, md + 64);
    return b;
  }

  it('finds the parent flag of a differencing VHDX', async () => {
    expect(await inspectVhdx(reader(vhdx(false)))).toEqual({ ok: true, detected: 'vhdx' });
    expect(await inspectVhdx(reader(vhdx(true)))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
    expect(await inspectVhdx(reader(vhdx(false, true)))).toMatchObject({ ok: false, code: 'FORMAT_UNSAFE' });
    expect(await verifyStored('vhdx', 0, reader(Buffer.alloc(300 * 1024)))).toMatchObject({ ok: false, code: 'FORMAT_UNSUPPORTED' });
  });
});

describe('FormatCheckStream', () => {
  const run = async (declared: DiskFormat, data: Buffer, chunk = 4096): Promise<{ out: Buffer; error?: IngestError }> => {
    const parts: Buffer[] = [];
    const chunks: Buffer[] = [];
    for (let i = 0; i < data.length; i += chunk) chunks.push(data.subarray(i, i + chunk));
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        parts.push(c);
        cb();
      },
    });
    try {
      await pipeline(Readable.from(chunks), new FormatCheckStream(declared), sink);
      return { out: Buffer.concat(parts) };
    } catch (e) {
      return { out: Buffer.concat(parts), error: e as IngestError };
    }
  };

  it('passes an accepted file through unchanged, in chunks of any size', async () => {
    const data = Buffer.concat([qcow2(), Buffer.alloc(300_000, 7)]);
    for (const size of [1, 1000, 65536, 1 << 20]) {
      const r = await run('qcow2', size === 1 ? data.subarray(0, 70_000) : data, size);
      expect(r.error).toBeUndefined();
      expect(r.out.equals(size === 1 ? data.subarray(0, 70_000) : data)).toBe(true);
    }
  });

  it('refuses a bad file before passing a single byte on', async () => {
    const r = await run('qcow2', Buffer.concat([qcow2({ backingFile: '/etc/passwd' }), Buffer.alloc(500_000)]));
    expect(r.error).toBeInstanceOf(IngestError);
    expect(r.error).toMatchObject({ code: 'FORMAT_UNSAFE' });
    expect(r.out.length).toBe(0);
  });

  it('checks files shorter than the sniff window at their end', async () => {
    expect((await run('raw', Buffer.from('just some bytes'))).error).toBeUndefined();
    expect((await run('iso', Buffer.from('just some bytes'))).error).toMatchObject({ code: 'FORMAT_MISMATCH' });
  });

  it('checks the footer of a fixed VHD at the end of the stream', async () => {
    const body = Buffer.alloc(3 * SNIFF_HEAD_BYTES + 123, 1);
    expect((await run('vhd', Buffer.concat([body, vhdFooter(2)]), 777)).error).toBeUndefined();
    expect((await run('vhd', Buffer.concat([body, vhdFooter(4)]), 777)).error).toMatchObject({ code: 'FORMAT_UNSAFE' });
    expect((await run('vhd', body, 777)).error).toMatchObject({ code: 'FORMAT_MISMATCH' });
    // a footer split across chunks smaller than itself
    expect((await run('vhd', Buffer.concat([body, vhdFooter(2)]), 100)).error).toBeUndefined();
  });
});
