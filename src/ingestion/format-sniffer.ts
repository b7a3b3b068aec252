import { Transform, TransformCallback } from 'node:stream';
import { ObjectStorage, StorageError } from '../storage/object-storage';
import { IngestError } from './ingestion.errors';

/**
 * Checks that a file's bytes match its declared format (R5, R17), and refuses disk images that would
 * make the hypervisor open OTHER files: a qcow2 naming a backing file or an external data file, a
 * differencing VHD/VHDX, a VMDK delta disk or a bare VMDK descriptor pointing at extents. These are a
 * known attack on image services (a "disk" whose backing file is /etc/shadow or another tenant's disk).
 *
 * Three entry points:
 * - `checkHead(declared, head)`: the first bytes (SNIFF_HEAD_BYTES, or the whole file when shorter);
 * - `checkVhdFooter(tail)`: the last 512 bytes, for a fixed VHD whose only signature is its footer;
 * - `verifyStored(declared, size, read)`: checks needing random access once the file is stored
 *   (the VHD footer, a VHDX's parent flag deep in its metadata region).
 * `FormatCheckStream` wraps the first two for a streaming pipeline.
 */
export type DiskFormat = 'qcow2' | 'raw' | 'vmdk' | 'vhd' | 'vhdx' | 'iso';
export const DISK_FORMATS: readonly DiskFormat[] = ['qcow2', 'raw', 'vmdk', 'vhd', 'vhdx', 'iso'];

/** What the bytes look like. `unknown` is anything without a known signature (a raw disk, or junk). */
export type DetectedFormat =
  'qcow2' | 'vmdk' | 'vmdk-descriptor' | 'vmdk3' | 'vhd' | 'vhdx' | 'iso' | 'qed' | 'vdi' | 'luks' | 'parallels' | 'bochs' | 'cloop' | 'unknown';

export const SNIFF_HEAD_BYTES = 64 * 1024;
export const VHD_FOOTER_BYTES = 512;
/** an ISO 9660 / UDF volume descriptor is at 32769; a shorter file is not an ISO */
export const ISO_MIN_BYTES = 0x8001 + 5;

export type FormatRefusalCode = 'FORMAT_MISMATCH' | 'FORMAT_UNSAFE' | 'FORMAT_UNSUPPORTED';

export type FormatCheck =
  | {
      ok: true;
      detected: DetectedFormat;
      /** declared vhd with no signature at the start: a fixed VHD; its footer must be checked at the end */
      needsTail?: boolean;
    }
  | { ok: false; code: FormatRefusalCode; reason: string; detected?: DetectedFormat };

const DESCRIBE: Record<DetectedFormat, string> = {
  qcow2: 'a qcow2 image',
  vmdk: 'a VMDK image',
  'vmdk-descriptor': 'a VMDK descriptor file',
  vhd: 'a VHD image',
  vhdx: 'a VHDX image',
  iso: 'an ISO 9660/UDF image',
  qed: 'a QED image',
  vdi: 'a VirtualBox VDI image',
  luks: 'a LUKS-encrypted volume',
  parallels: 'a Parallels image',
  vmdk3: 'a VMware 3 (COWD) sparse disk',
  bochs: 'a Bochs image',
  cloop: 'a cloop compressed image',
  unknown: 'not a recognised image format (raw data)',
};

const ascii = (b: Buffer, at: number, text: string): boolean => b.length >= at + text.length && b.toString('latin1', at, at + text.length) === text;

const refuse = (code: FormatRefusalCode, reason: string, detected?: DetectedFormat): FormatCheck => ({ ok: false, code, reason, detected });

interface Detection {
  format: DetectedFormat;
  /** a problem found while parsing, whatever was declared */
  problem?: { code: FormatRefusalCode; reason: string };
}

// --- qcow2 -------------------------------------------------------------------------------------

const QCOW2_EXT_END = 0x00000000;
const QCOW2_EXT_EXTERNAL_DATA_FILE = 0x44415441;
const QCOW2_INCOMPAT_CORRUPT = 1n << 1n;
const QCOW2_INCOMPAT_EXTERNAL_DATA = 1n << 2n;
const QCOW2_INCOMPAT_KNOWN = (1n << 5n) - 1n; // dirty, corrupt, external data, compression type, extended L2

function inspectQcow2(b: Buffer): Detection {
  const format = 'qcow2';
  if (b.length < 72) return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: 'The qcow2 header is truncated' } };
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3) {
    return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: `qcow2 version ${version} is not supported (only 2 and 3)` } };
  }
  const backingOffset = b.readBigUInt64BE(8);
  const backingSize = b.readUInt32BE(16);
  if (backingOffset !== 0n || backingSize !== 0) {
    let name = '';
    if (backingOffset > 0n && backingOffset < BigInt(b.length)) {
      const at = Number(backingOffset);
      name = b.toString('utf8', at, Math.min(b.length, at + Math.min(backingSize, 1023))).replace(/[^\x20-\x7e]/g, '?');
    }
    return {
      format,
      problem: {
        code: 'FORMAT_UNSAFE',
        reason: `The qcow2 image depends on a backing file${name ? ` ("${name}")` : ''}; only standalone images are accepted (flatten it with "qemu-img convert -O qcow2")`,
      },
    };
  }
  const cryptMethod = b.readUInt32BE(32);
  if (cryptMethod !== 0) {
    return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: 'The qcow2 image is encrypted; encrypted images are not supported' } };
  }
  let extStart = 72;
  if (version === 3) {
    if (b.length < 104) return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: 'The qcow2 v3 header is truncated' } };
    const incompatible = b.readBigUInt64BE(72);
    if (incompatible & QCOW2_INCOMPAT_EXTERNAL_DATA) {
      return {
        format,
        problem: { code: 'FORMAT_UNSAFE', reason: 'The qcow2 image keeps its data in an external data file; only self-contained images are accepted' },
      };
    }
    if (incompatible & QCOW2_INCOMPAT_CORRUPT) {
      return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: 'The qcow2 image is marked corrupt; repair it with "qemu-img check -r all"' } };
    }
    if (incompatible & ~QCOW2_INCOMPAT_KNOWN) {
      return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: `The qcow2 image uses unknown incompatible features (0x${incompatible.toString(16)})` } };
    }
    extStart = b.readUInt32BE(100);
    if (extStart < 104) return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: `The qcow2 header length ${extStart} is invalid` } };
  }
  // header extensions: (type u32, length u32, data padded to 8) until type 0
  for (let at = extStart, n = 0; at + 8 <= b.length && n < 64; n++) {
    const type = b.readUInt32BE(at);
    const len = b.readUInt32BE(at + 4);
    if (type === QCOW2_EXT_END) break;
    if (type === QCOW2_EXT_EXTERNAL_DATA_FILE) {
      return {
        format,
        problem: { code: 'FORMAT_UNSAFE', reason: 'The qcow2 image names an external data file; only self-contained images are accepted' },
      };
    }
    at += 8 + Math.ceil(len / 8) * 8;
  }
  return { format };
}

// --- vmdk --------------------------------------------------------------------------------------

interface VmdkDescriptor {
  createType?: string;
  parentCID?: string;
  parentFileNameHint?: string;
  extents: { access: string; type: string; file?: string }[];
}

function parseVmdkDescriptor(text: string): VmdkDescriptor {
  const d: VmdkDescriptor = { extents: [] };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const kv = /^([A-Za-z0-9_.]+)\s*=\s*"?([^"]*)"?$/.exec(line);
    if (kv) {
      if (kv[1] === 'createType') d.createType = kv[2];
      if (kv[1] === 'parentCID') d.parentCID = kv[2].toLowerCase();
      if (kv[1] === 'parentFileNameHint') d.parentFileNameHint = kv[2];
      continue;
    }
    const ext = /^(RW|RDONLY|NOACCESS)\s+\d+\s+([A-Z]+)(?:\s+"([^"]*)")?/.exec(line);
    if (ext) d.extents.push({ access: ext[1], type: ext[2], file: ext[3] });
  }
  return d;
}

/** qemu reads a sparse VMDK's descriptor (and its CIDs and parentFileNameHint) at sector 1, DESC_SIZE bytes, up to the first NUL. */
const VMDK_DESC_AT = 512;
const VMDK_DESC_SIZE = 20 * 512;

/** The text qemu's vmdk driver sees at `at`: C-string semantics (strstr stops at the first NUL). */
function vmdkDescriptorText(b: Buffer, at: number, size: number): string {
  const end = Math.min(b.length, at + size);
  if (at >= end) return '';
  const nul = b.indexOf(0, at);
  return b.toString('latin1', at, nul === -1 || nul > end ? end : nul);
}

/**
 * What qemu finds in a descriptor text with strstr, comments included: `parentFileNameHint` anywhere makes the disk
 * a delta disk of that file, and the first `parentCID=` is the parent's CID.
 */
function qemuVmdkParent(text: string): { hint?: string; parentCID?: string } {
  const out: { hint?: string; parentCID?: string } = {};
  const h = text.indexOf('parentFileNameHint');
  if (h !== -1) {
    const rest = text.slice(h + 'parentFileNameHint'.length + 2);
    out.hint = rest.slice(0, Math.max(0, rest.indexOf('"'))) || rest.slice(0, 64) || '?';
  }
  const c = /parentCID\s*=\s*([0-9a-fA-F]+)/.exec(text);
  if (c) out.parentCID = c[1].toLowerCase();
  return out;
}

function vmdkDeltaProblem(hint?: string): Detection['problem'] {
  return {
    code: 'FORMAT_UNSAFE',
    reason: `The VMDK is a delta disk depending on a parent${hint ? ` ("${hint.replace(/[^\x20-\x7e]/g, '?')}")` : ''}; only standalone disks are accepted`,
  };
}

function inspectVmdkSparse(b: Buffer): Detection {
  const format = 'vmdk';
  if (b.length < 44) return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: 'The VMDK header is truncated' } };
  const capacity = b.readBigUInt64LE(12);
  const descSector = b.readBigUInt64LE(28);
  const descSectors = b.readBigUInt64LE(36);
  // qemu opens the descriptor and its extents at the header's offset only for a split (capacity 0) sparse file
  if (capacity === 0n) {
    return {
      format,
      problem: {
        code: 'FORMAT_UNSUPPORTED',
        reason: 'The VMDK is the first file of a split sparse disk; upload a single-file VMDK (monolithicSparse or streamOptimized)',
      },
    };
  }
  // whatever the header says, qemu reads the CIDs and parentFileNameHint at sector 1: check that text, and refuse a
  // header that points anywhere else (a descriptor we would read somewhere qemu does not)
  const qemuView = qemuVmdkParent(vmdkDescriptorText(b, VMDK_DESC_AT, VMDK_DESC_SIZE));
  if (qemuView.hint !== undefined || (qemuView.parentCID && qemuView.parentCID !== 'ffffffff')) return { format, problem: vmdkDeltaProblem(qemuView.hint) };
  if (descSector !== 1n || descSectors === 0n || descSectors > 2048n) {
    return {
      format,
      problem: {
        code: 'FORMAT_UNSUPPORTED',
        reason: `The VMDK header puts its descriptor at sector ${descSector} (${descSectors} sectors); only disks with the descriptor at sector 1, where qemu reads it, are accepted`,
      },
    };
  }
  const d = parseVmdkDescriptor(vmdkDescriptorText(b, VMDK_DESC_AT, Number(descSectors) * 512));
  if ((d.parentCID && d.parentCID !== 'ffffffff') || d.parentFileNameHint) return { format, problem: vmdkDeltaProblem(d.parentFileNameHint) };
  if (d.createType && !['monolithicSparse', 'streamOptimized'].includes(d.createType)) {
    return {
      format,
      problem: { code: 'FORMAT_UNSUPPORTED', reason: `VMDK type ${d.createType} is not supported: upload a monolithicSparse or streamOptimized VMDK` },
    };
  }
  const external = d.extents.filter((e) => e.type !== 'SPARSE' && e.type !== 'ZERO');
  if (external.length || d.extents.filter((e) => e.type === 'SPARSE').length > 1) {
    return { format, problem: { code: 'FORMAT_UNSAFE', reason: 'The VMDK names extents in other files; only single-file VMDKs are accepted' } };
  }
  return { format };
}

/**
 * qemu's own VMDK probe (vmdk_probe): after any comment lines ("#...") and blank lines, a `version=1|2|3` line makes a
 * file a VMDK descriptor. A file qemu would probe as a descriptor is refused whatever it is declared, and so is any
 * text head with a createType and an extent line, wherever they are in the first bytes.
 */
function looksLikeVmdkDescriptor(head: Buffer): boolean {
  let p = 0;
  const end = head.length;
  while (p < end) {
    const c = head[p];
    if (c === 0x23 /* # */) {
      const nl = head.indexOf(0x0a, p);
      if (nl === -1) return false;
      p = nl + 1;
      continue;
    }
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) {
      p++;
      continue;
    }
    if (/^version\s*=\s*[0-9]/.test(head.toString('latin1', p, Math.min(end, p + 16)))) return true;
    break;
  }
  // a text head (no NUL before the descriptor keys) naming a createType and an extent
  const nul = head.indexOf(0);
  const text = head.toString('latin1', 0, nul === -1 ? end : nul).replace(/^\uFEFF|^\xEF\xBB\xBF/, '');
  if (text.trimStart().startsWith('# Disk DescriptorFile')) return true;
  return /^\s*createType\s*=/m.test(text) && /^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+[A-Z]+/m.test(text);
}

// --- vhd / vhdx --------------------------------------------------------------------------------

const VHD_TYPE_DIFFERENCING = 4;

function inspectVhdFooter(footer: Buffer): Detection {
  const format = 'vhd';
  if (footer.length < 64) return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: 'The VHD footer is truncated' } };
  const type = footer.readUInt32BE(60);
  if (type === VHD_TYPE_DIFFERENCING) {
    return { format, problem: { code: 'FORMAT_UNSAFE', reason: 'The VHD is a differencing disk depending on a parent; only standalone disks are accepted' } };
  }
  if (type !== 2 && type !== 3) return { format, problem: { code: 'FORMAT_UNSUPPORTED', reason: `VHD disk type ${type} is not supported` } };
  return { format };
}

// --- detection ---------------------------------------------------------------------------------

/** What the first bytes are, with any problem found while parsing them. */
export function detectHead(head: Buffer): Detection {
  if (ascii(head, 0, 'QFI\xfb')) return inspectQcow2(head);
  if (ascii(head, 0, 'KDMV')) return inspectVmdkSparse(head);
  if (ascii(head, 0, 'vhdxfile')) return { format: 'vhdx' };
  if (ascii(head, 0, 'conectix')) return inspectVhdFooter(head.subarray(0, 512));
  if (ascii(head, 0, 'QED\0')) return { format: 'qed' };
  if (ascii(head, 0, 'LUKS\xba\xbe')) return { format: 'luks' };
  if (head.length >= 0x44 && head.readUInt32LE(0x40) === 0xbeda107f) return { format: 'vdi' };
  if (ascii(head, 0, 'WithoutFreeSpace') || ascii(head, 0, 'WithouFreSpacExt')) return { format: 'parallels' };
  if (ascii(head, 0, 'COWD')) return { format: 'vmdk3' };
  if (ascii(head, 0, 'Bochs Virtual HD Image')) return { format: 'bochs' };
  if (ascii(head, 0, '#!/bin/sh\n#V2.0 Format\nmodprobe cloop')) return { format: 'cloop' };
  if (looksLikeVmdkDescriptor(head)) {
    return {
      format: 'vmdk-descriptor',
      problem: {
        code: 'FORMAT_UNSAFE',
        reason: 'The file is a VMDK descriptor that points to other files (extents); upload a single-file VMDK (monolithicSparse or streamOptimized)',
      },
    };
  }
  for (const at of [0x8001, 0x8801, 0x9001]) {
    if (['CD001', 'BEA01', 'NSR02', 'NSR03'].some((sig) => ascii(head, at, sig))) return { format: 'iso' };
  }
  return { format: 'unknown' };
}

/**
 * Checks the first bytes against the declared format. `head` is the first SNIFF_HEAD_BYTES of the file,
 * or the whole file when it is shorter.
 */
export function checkHead(declared: DiskFormat, head: Buffer): FormatCheck {
  const d = detectHead(head);
  if (d.problem) return refuse(d.problem.code, d.problem.reason, d.format);
  const mismatch = (): FormatCheck => {
    let reason = `The file was declared ${declared} but its content is ${DESCRIBE[d.format]}`;
    if (declared === 'iso' && d.format === 'unknown' && head.length < ISO_MIN_BYTES) reason += ` (it is too short: ${head.length} bytes)`;
    return refuse('FORMAT_MISMATCH', reason, d.format);
  };
  if (['qed', 'vdi', 'luks', 'parallels', 'vmdk3', 'bochs', 'cloop'].includes(d.format)) {
    return refuse('FORMAT_UNSUPPORTED', `The file is ${DESCRIBE[d.format]}, which is not a supported format`, d.format);
  }
  switch (declared) {
    case 'qcow2':
    case 'vmdk':
    case 'vhdx':
    case 'iso':
      return d.format === declared ? { ok: true, detected: d.format } : mismatch();
    case 'vhd':
      if (d.format === 'vhd') return { ok: true, detected: 'vhd' };
      // a fixed VHD is raw data with a footer: nothing to see at the start
      if (d.format === 'unknown') return { ok: true, detected: 'unknown', needsTail: true };
      return mismatch();
    case 'raw':
      // an ISO is raw data too; anything with another container format is not
      return d.format === 'unknown' || d.format === 'iso' ? { ok: true, detected: d.format } : mismatch();
  }
}

/** Checks the last bytes of a file declared vhd (a fixed VHD has its only signature there). */
export function checkVhdFooter(tail: Buffer): FormatCheck {
  const t = tail.subarray(Math.max(0, tail.length - VHD_FOOTER_BYTES));
  // the footer is the last 512 bytes; some old tools wrote a 511-byte footer
  const footer = ascii(t, 0, 'conectix') ? t : ascii(t, 1, 'conectix') ? t.subarray(1) : undefined;
  if (!footer) return refuse('FORMAT_MISMATCH', 'The file was declared vhd but has no VHD footer (raw data?)', 'unknown');
  const d = inspectVhdFooter(footer);
  if (d.problem) return refuse(d.problem.code, d.problem.reason, 'vhd');
  return { ok: true, detected: 'vhd' };
}

// --- checks on the stored file -----------------------------------------------------------------

/** Reads `length` bytes at `offset` (fewer at the end of the file). */
export type RangeReader = (offset: number, length: number) => Promise<Buffer>;

/** A RangeReader over a stored object, for verifyStored. Past the end it reads nothing. */
export function storageRangeReader(storage: ObjectStorage, key: string): RangeReader {
  return async (offset, length) => {
    let stream;
    try {
      stream = await storage.getStream(key, { start: offset, end: offset + length - 1 });
    } catch (e) {
      if (e instanceof StorageError && e.code === 'RANGE_NOT_SATISFIABLE') return Buffer.alloc(0);
      throw e;
    }
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c as Buffer);
    return Buffer.concat(parts);
  };
}

const guid = (text: string): Buffer => {
  const h = text.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  // the first three fields are little-endian on disk
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
};
const VHDX_METADATA_REGION = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const VHDX_FILE_PARAMETERS = guid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const VHDX_PARENT_LOCATOR = guid('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');

/** A VHDX's parent flag lives in its metadata region, found through the region table at 192 KiB. */
export async function inspectVhdx(read: RangeReader): Promise<FormatCheck> {
  const unsupported = (reason: string) => refuse('FORMAT_UNSUPPORTED', reason, 'vhdx');
  for (const tableAt of [192 * 1024, 256 * 1024]) {
    const table = await read(tableAt, 64 * 1024);
    if (!ascii(table, 0, 'regi')) continue;
    const count = table.readUInt32LE(8);
    if (count > 2047) return unsupported('The VHDX region table is invalid');
    for (let i = 0; i < count; i++) {
      const e = 16 + i * 32;
      if (e + 32 > table.length) break;
      if (!table.subarray(e, e + 16).equals(VHDX_METADATA_REGION)) continue;
      const regionAt = Number(table.readBigUInt64LE(e + 16));
      const meta = await read(regionAt, 64 * 1024);
      if (!ascii(meta, 0, 'metadata')) return unsupported('The VHDX metadata region is invalid');
      const entries = meta.readUInt16LE(10);
      for (let j = 0; j < entries && 32 + j * 32 + 32 <= meta.length; j++) {
        const m = 32 + j * 32;
        const id = meta.subarray(m, m + 16);
        if (id.equals(VHDX_PARENT_LOCATOR)) {
          return refuse('FORMAT_UNSAFE', 'The VHDX is a differencing disk depending on a parent; only standalone disks are accepted', 'vhdx');
        }
        if (id.equals(VHDX_FILE_PARAMETERS)) {
          const off = meta.readUInt32LE(m + 16);
          const params = off + 8 <= meta.length ? meta.subarray(off, off + 8) : await read(regionAt + off, 8);
          if (params.length >= 8 && params.readUInt32LE(4) & 0b10) {
            return refuse('FORMAT_UNSAFE', 'The VHDX is a differencing disk depending on a parent; only standalone disks are accepted', 'vhdx');
          }
        }
      }
      return { ok: true, detected: 'vhdx' };
    }
  }
  return unsupported('The VHDX has no valid region table');
}

/**
 * The checks that need the whole stored file: the VHD footer (declared vhd) and a VHDX's parent flag.
 * Other formats were fully checked from their first bytes; they pass.
 */
export async function verifyStored(declared: DiskFormat, size: number, read: RangeReader): Promise<FormatCheck> {
  if (declared === 'vhd') {
    if (size < VHD_FOOTER_BYTES) return refuse('FORMAT_MISMATCH', 'The file is too short to be a VHD', 'unknown');
    return checkVhdFooter(await read(size - VHD_FOOTER_BYTES, VHD_FOOTER_BYTES));
  }
  if (declared === 'vhdx') return inspectVhdx(read);
  return { ok: true, detected: declared === 'raw' ? 'unknown' : declared };
}

/** Throws the IngestError a refused check stands for. */
export function assertFormat(check: FormatCheck): asserts check is Extract<FormatCheck, { ok: true }> {
  if (!check.ok) throw new IngestError(check.code, check.reason, { details: { detected: check.detected } });
}

/**
 * A Transform for the streaming pipeline: holds back the first `headBytes` until it has checked them
 * (so a refused file never reaches storage), then passes everything through; for a declared vhd without
 * a signature at the start it keeps the last 512 bytes and checks the footer before it ends. Fails the
 * stream with an IngestError (FORMAT_MISMATCH / FORMAT_UNSAFE / FORMAT_UNSUPPORTED).
 */
export class FormatCheckStream extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private checked?: FormatCheck;
  private tail: Buffer = Buffer.alloc(0);

  constructor(
    readonly declared: DiskFormat,
    private readonly headBytes = SNIFF_HEAD_BYTES,
  ) {
    super();
  }

  /** The result of the head check, once made. */
  get result(): FormatCheck | undefined {
    return this.checked;
  }

  private runHeadCheck(): Error | undefined {
    const head = Buffer.concat(this.held, this.heldBytes);
    this.checked = checkHead(this.declared, head.subarray(0, this.headBytes));
    if (!this.checked.ok) return new IngestError(this.checked.code, this.checked.reason, { details: { detected: this.checked.detected } });
    this.keepTail(head);
    this.push(head);
    this.held = [];
    return undefined;
  }

  private keepTail(chunk: Buffer): void {
    if (!this.checked?.ok || !this.checked.needsTail) return;
    if (chunk.length >= VHD_FOOTER_BYTES) this.tail = Buffer.from(chunk.subarray(chunk.length - VHD_FOOTER_BYTES));
    else this.tail = Buffer.concat([this.tail, chunk]).subarray(-VHD_FOOTER_BYTES);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.checked) {
      this.keepTail(chunk);
      return cb(null, chunk);
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < this.headBytes) return cb();
    cb(this.runHeadCheck());
  }

  override _flush(cb: TransformCallback): void {
    if (!this.checked) {
      const err = this.runHeadCheck();
      if (err) return cb(err);
    }
    if (this.checked?.ok && this.checked.needsTail) {
      const t = checkVhdFooter(this.tail);
      if (!t.ok) return cb(new IngestError(t.code, t.reason, { details: { detected: t.detected } }));
      this.checked = t;
    }
    cb();
  }
}
