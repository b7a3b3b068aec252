import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { signToken } from '../../src/access/jwt';
import { Role } from '../../src/access/principal';
import { BucketFileSource } from '../../src/file-sources/bucket-file-source';
import { FileSourceError } from '../../src/file-sources/file-source.errors';
import { FileEntryType, FileSource, pageEntries } from '../../src/file-sources/file-source';
import { LocalDirFileSource } from '../../src/file-sources/local-dir-file-source';
import { SmbFileSource } from '../../src/file-sources/smb-file-source';
import { MinioStorage } from '../../src/storage/minio-storage';
import { startS3Server, S3TestServer } from '../support/s3-server';
import { ServiceProcess, startServiceProcess } from '../support/service-process';
import { SmbdServer, startSmbd } from '../support/smbd';
import { ensureBuilt } from '../support/build';
import { until } from '../support/kit';

/**
 * The file-source adapters against real stores: smbd on a loopback port (test/support/smbd.ts) through
 * smbclient, a directory with symlinks, and a bucket on the in-process S3 server. Reads are checked byte for
 * byte and the failure of each way a read can go wrong has its code.
 */

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `size` bytes (a random 8 MiB block repeated, each copy stamped) and returns the sha256. */
function bigFile(path: string, size: number): string {
  const block = randomFillSync(Buffer.alloc(8 * MiB));
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  for (let off = 0, n = 0; off < size; off += block.length, n++) {
    block.writeUInt32LE(n, 0);
    const piece = size - off >= block.length ? block : block.subarray(0, size - off);
    writeSync(fd, piece);
    hash.update(piece);
  }
  closeSync(fd);
  return hash.digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Drains `stream` into a hash; resolves with it, or rejects with the stream's error. */
async function hashOf(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

async function failureOf(p: Promise<unknown>): Promise<FileSourceError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FileSourceError) return e;
    throw e;
  }
  throw new Error('expected a FileSourceError, got success');
}

/** Reads one chunk, holds the stream while `meanwhile` runs, then drains it. */
async function readAround(stream: Readable, meanwhile: () => Promise<void> | void): Promise<{ sha256: string; bytes: number }> {
  await new Promise<void>((resolve, reject) => {
    stream.once('readable', () => resolve());
    stream.once('error', reject);
  });
  stream.pause();
  await meanwhile();
  return hashOf(stream);
}

/** Processes whose command line is an smbclient for `port`. */
const smbclients = (port: number): number[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return cmd[0].endsWith('smbclient') && cmd.includes(String(port));
      } catch {
        return false;
      }
    })
    .map(Number);

describe('SmbFileSource: smbclient against a real smbd', () => {
  let smbd: SmbdServer;
  let src: SmbFileSource;
  let bigSha: string;
  const BIG = 210 * MiB + 12345;
  const made: SmbFileSource[] = [];
  const make = (over: Partial<ConstructorParameters<typeof SmbFileSource>[0]> = {}, timeoutMs = 8000) => {
    const s = new SmbFileSource(
      { name: 'share', host: '127.0.0.1', port: smbd.port, share: 'files', root: '', user: smbd.user, password: smbd.password, ...over },
      { smbclient: 'smbclient', timeoutMs },
    );
    made.push(s);
    return s;
  };

  beforeAll(async () => {
    smbd = await startSmbd();
    const d = smbd.shareDir;
    mkdirSync(join(d, 'isos', 'sub dir', '深层'), { recursive: true });
    for (let i = 0; i < 25; i++) {
      const f = join(d, 'isos', `file-${String(i).padStart(2, '0')}.raw`);
      writeFileSync(f, Buffer.alloc(1000 + ((i * 7919) % 25) * 100, i));
      const t = new Date(Date.UTC(2026, 0, 1, 0, 0, 0) + ((i * 13) % 25) * 3600_000);
      utimesSync(f, t, t);
    }
    writeFileSync(join(d, 'isos', 'sub dir', '深层', 'deep.iso'), 'deep');
    writeFileSync(join(d, '中文 镜像.iso'), Buffer.from('中文内容'.repeat(1000)));
    writeFileSync(join(d, 'a;b c.raw'), 'semicolon');
    writeFileSync(join(d, 'NT_STATUS_LOGON_FAILURE.txt'), 'a name that looks like a status');
    symlinkSync('/etc/passwd', join(d, 'escape-link'));
    bigSha = bigFile(join(d, 'big.raw'), BIG);
    src = make();
  }, 120_000);
  afterAll(async () => {
    for (const s of made) await s.close();
    await smbd?.close();
  });

  it('keeps the credentials in a 0600 file of a private directory, removed on close', async () => {
    const s = make();
    await s.stat('big.raw');
    const dirs = readdirSync('/dev/shm').filter((d) => d.startsWith(`hcm-smb-${process.pid}-`));
    expect(dirs.length).toBeGreaterThan(0);
    await s.close();
    expect(readdirSync('/dev/shm').filter((d) => d.startsWith(`hcm-smb-${process.pid}-`))).toHaveLength(dirs.length - 1);
  });

  it('lists a folder: folders first, names with spaces, Chinese characters and ";", sizes, modified times; links that leave the share are not shown', async () => {
    const root = await src.readdir('', 1000);
    expect(root.truncated).toBe(false);
    const byName = Object.fromEntries(root.entries.map((e) => [e.name, e]));
    expect(Object.keys(byName).sort()).toEqual(['NT_STATUS_LOGON_FAILURE.txt', 'a;b c.raw', 'big.raw', 'isos', '中文 镜像.iso'].sort());
    expect(byName['isos']).toMatchObject({ path: 'isos', type: FileEntryType.Dir, size: 0 });
    expect(byName['中文 镜像.iso']).toMatchObject({ path: '中文 镜像.iso', type: FileEntryType.File, size: Buffer.byteLength('中文内容'.repeat(1000)) });
    expect(byName['big.raw'].size).toBe(BIG);
    const page = pageEntries(root, { page: 1, pageSize: 10, sort: 'name', order: 'asc' });
    expect(page.items[0].name).toBe('isos');
  });

  it('pages, sorts and filters a folder of 25 files and one subfolder; subfolders are browsable', async () => {
    const listing = await src.readdir('isos', 1000);
    expect(listing.entries).toHaveLength(26);
    const p2 = pageEntries(listing, { page: 2, pageSize: 10, sort: 'name', order: 'asc' });
    expect(p2.total).toBe(26);
    expect(p2.items.map((e) => e.name)).toEqual(Array.from({ length: 10 }, (_, i) => `file-${String(i + 9).padStart(2, '0')}.raw`));
    const bySize = pageEntries(listing, { page: 1, pageSize: 5, sort: 'size', order: 'desc' });
    expect(bySize.items[0].type).toBe(FileEntryType.Dir);
    const sizes = bySize.items.slice(1).map((e) => e.size);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    expect(sizes[0]).toBe(1000 + 24 * 100);
    const byTime = pageEntries(listing, { page: 1, pageSize: 30, sort: 'modifiedAt', order: 'asc' });
    const times = byTime.items.filter((e) => e.type === FileEntryType.File).map((e) => e.modifiedAt.getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(new Date(times[0]).toISOString()).toBe('2026-01-01T00:00:00.000Z');
    const filtered = pageEntries(listing, { page: 1, pageSize: 50, sort: 'name', order: 'desc', name: 'FILE-1' });
    expect(filtered.items.map((e) => e.name)).toEqual(Array.from({ length: 10 }, (_, i) => `file-${19 - i}.raw`));
    expect((await src.readdir('isos/sub dir', 100)).entries).toEqual([
      expect.objectContaining({ name: '深层', path: 'isos/sub dir/深层', type: FileEntryType.Dir }),
    ]);
    expect((await src.readdir('isos/sub dir/深层', 100)).entries).toEqual([
      expect.objectContaining({ name: 'deep.iso', path: 'isos/sub dir/深层/deep.iso', size: 4 }),
    ]);
    const capped = await src.readdir('isos', 10);
    expect(capped).toMatchObject({ truncated: true });
    expect(capped.entries).toHaveLength(10);
  });

  it('a source rooted in a folder of the share sees only that folder', async () => {
    const sub = make({ root: 'isos/sub dir' });
    expect(sub.location).toBe(`smb://127.0.0.1:${smbd.port}/files/isos/sub dir`);
    expect(make({ port: 445, root: 'isos/sub dir' }).location).toBe('\\\\127.0.0.1\\files\\isos\\sub dir');
    expect((await sub.readdir('', 10)).entries.map((e) => e.path)).toEqual(['深层']);
    expect((await readAll((await sub.open('深层/deep.iso')).stream)).toString()).toBe('deep');
  });

  it('says what is missing, and what is a file or a folder', async () => {
    expect(await failureOf(src.stat('nope.iso'))).toMatchObject({ code: 'FILE_NOT_FOUND', retryable: false });
    expect(await failureOf(src.stat('nope/deeper.iso'))).toMatchObject({ code: 'FILE_NOT_FOUND' });
    expect(await failureOf(src.readdir('nope', 10))).toMatchObject({ code: 'FILE_NOT_FOUND' });
    expect(await failureOf(src.readdir('big.raw', 10))).toMatchObject({ code: 'FILE_NOT_A_DIRECTORY' });
    expect(await failureOf(src.open('isos'))).toMatchObject({ code: 'FILE_NOT_A_FILE' });
    expect(await failureOf(src.stat('escape-link'))).toMatchObject({ code: 'FILE_NOT_FOUND' });
    expect(await src.stat('isos/sub dir')).toMatchObject({ type: FileEntryType.Dir, name: 'sub dir' });
  });

  it('reads names with spaces, Chinese characters and ";" byte for byte', async () => {
    expect((await readAll((await src.open('中文 镜像.iso')).stream)).toString()).toBe('中文内容'.repeat(1000));
    expect((await readAll((await src.open('a;b c.raw')).stream)).toString()).toBe('semicolon');
    expect((await readAll((await src.open('NT_STATUS_LOGON_FAILURE.txt')).stream)).toString()).toBe('a name that looks like a status');
  });

  it(`streams a ${(BIG / MiB).toFixed(0)} MiB file whole, with the right sha256`, async () => {
    const file = await src.open('big.raw');
    expect(file.size).toBe(BIG);
    expect(await hashOf(file.stream)).toEqual({ sha256: bigSha, bytes: BIG });
    await until(() => smbclients(smbd.port).length === 0, 'smbclient exited');
  }, 120_000);

  it("tells and reads a file above 4 GiB at its real size (smbclient's allinfo prints 32 bits of it)", async () => {
    const HUGE = 4 * 1024 * MiB + 7;
    const path = join(smbd.shareDir, 'huge.raw');
    writeFileSync(path, '');
    truncateSync(path, HUGE); // sparse: no disk taken
    try {
      expect(await src.stat('huge.raw')).toMatchObject({ type: FileEntryType.File, size: HUGE });
      expect((await src.readdir('', 1000)).entries.find((e) => e.name === 'huge.raw')).toMatchObject({ size: HUGE });
      const file = await src.open('huge.raw');
      expect(file.size).toBe(HUGE);
      // read whole: the size smbclient's get announces and the bytes read both match what stat said
      let bytes = 0;
      for await (const chunk of file.stream) bytes += (chunk as Buffer).length;
      expect(bytes).toBe(HUGE);
    } finally {
      rmSync(path, { force: true });
    }
  }, 120_000);

  it('a wrong password fails with FILE_SOURCE_AUTH_FAILED; the password is never on a command line, in an environment or in a message', async () => {
    const wrong = 'Wrong-Secret-4711';
    const bad = make({ password: wrong });
    const e = await failureOf(bad.readdir('', 10));
    expect(e).toMatchObject({ code: 'FILE_SOURCE_AUTH_FAILED', retryable: false, details: { status: 'NT_STATUS_LOGON_FAILURE' } });
    expect(e.message).toMatch(/refused the configured user and password/);
    expect(`${e.message} ${JSON.stringify(e.details)}`).not.toContain(wrong);
    expect(await failureOf(bad.open('big.raw'))).toMatchObject({ code: 'FILE_SOURCE_AUTH_FAILED' });

    // a read that runs: look at every smbclient process while it does
    const file = await src.open('big.raw');
    const reading = readAround(file.stream, async () => {
      const pids = smbclients(smbd.port);
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
        expect(cmdline.join(' ')).not.toContain(smbd.password);
        expect(cmdline.join(' ')).not.toContain('big.raw'); // commands go to stdin
        expect(environ).not.toContain(smbd.password);
        expect(environ).not.toMatch(/(^|\0)(PASSWD|PASSWD_FD|USER)=/);
        // the password is in an authentication file only root and the service's user can read
        const auth = cmdline[cmdline.indexOf('-A') + 1];
        expect(statSync(auth).mode & 0o777).toBe(0o600);
        expect(statSync(dirname(auth)).mode & 0o777).toBe(0o700);
      }
    });
    expect((await reading).sha256).toBe(bigSha);
  }, 60_000);

  it('fails loudly on a short read: a file cut while it is read is FILE_SHORT_READ, never a clean end', async () => {
    const path = join(smbd.shareDir, 'shrinking.raw');
    bigFile(path, 96 * MiB);
    const file = await src.open('shrinking.raw');
    const e = await failureOf(readAround(file.stream, () => truncateSync(path, 4 * MiB)));
    expect(e.code).toBe('FILE_SHORT_READ');
    expect(e.retryable).toBe(true);
    expect(e.message).toMatch(/stopped after \d+ of 100663296 bytes/);
    unlinkSync(path);
  }, 60_000);

  it('a file deleted while it is read fails with FILE_NOT_FOUND, and one rewritten meanwhile with FILE_CHANGED', async () => {
    const path = join(smbd.shareDir, 'doomed.raw');
    bigFile(path, 24 * MiB);
    let file = await src.open('doomed.raw');
    let e = await failureOf(readAround(file.stream, () => unlinkSync(path)));
    expect(e).toMatchObject({ code: 'FILE_NOT_FOUND', retryable: false });
    expect(e.message).toMatch(/was deleted while it was being read/);

    bigFile(path, 24 * MiB);
    file = await src.open('doomed.raw');
    e = await failureOf(
      readAround(file.stream, () => {
        const later = new Date(Date.now() + 60_000);
        utimesSync(path, later, later);
      }),
    );
    expect(e).toMatchObject({ code: 'FILE_CHANGED', retryable: true });
    unlinkSync(path);
  }, 60_000);

  it('the share going away mid-transfer is FILE_READ_INTERRUPTED (retryable); unreachable afterwards, readable once it is back', async () => {
    const file = await src.open('big.raw');
    const e = await failureOf(readAround(file.stream, () => smbd.stop()));
    expect(e).toMatchObject({ code: 'FILE_READ_INTERRUPTED', retryable: true });
    expect(await failureOf(src.stat('big.raw'))).toMatchObject({ code: 'FILE_SOURCE_UNREACHABLE', retryable: true });
    await smbd.start();
    expect(await src.stat('big.raw')).toMatchObject({ size: BIG });
  }, 60_000);

  it('a server that does not answer times out (FILE_SOURCE_TIMEOUT), and a cancelled read kills smbclient', async () => {
    const quick = make({}, 1500);
    process.kill(smbd.pid()!, 'SIGSTOP');
    try {
      const t0 = Date.now();
      expect(await failureOf(quick.stat('big.raw'))).toMatchObject({ code: 'FILE_SOURCE_TIMEOUT', retryable: true });
      expect(Date.now() - t0).toBeLessThan(6000);
    } finally {
      process.kill(smbd.pid()!, 'SIGCONT');
    }
    await until(() => smbclients(smbd.port).length === 0, 'the timed-out smbclient is gone');

    const ac = new AbortController();
    const file = await src.open('big.raw', { signal: ac.signal });
    const e = await failureOf(readAround(file.stream, () => ac.abort()));
    expect(e.code).toBe('FILE_READ_INTERRUPTED');
    await until(() => smbclients(smbd.port).length === 0, 'smbclient killed on abort');

    // the consumer going away (the store failed) kills it too
    const again = await src.open('big.raw');
    await new Promise((r) => again.stream.once('readable', r));
    again.stream.destroy();
    await until(() => smbclients(smbd.port).length === 0, 'smbclient killed when its reader is destroyed');
  }, 60_000);

  it('names the share or the server when they are wrong', async () => {
    expect(await failureOf(make({ share: 'nosuch' }).readdir('', 10))).toMatchObject({ code: 'FILE_SOURCE_SHARE_NOT_FOUND', retryable: false });
    expect(await failureOf(make({ port: 1 }).readdir('', 10))).toMatchObject({ code: 'FILE_SOURCE_UNREACHABLE', retryable: true });
    const missing = new SmbFileSource(
      { name: 's', host: '127.0.0.1', port: smbd.port, share: 'files', root: '', user: 'u', password: 'p' },
      { smbclient: '/nonexistent/smbclient', timeoutMs: 2000 },
    );
    made.push(missing);
    expect(await failureOf(missing.readdir('', 10))).toMatchObject({
      code: 'FILE_SOURCE_FAILED',
      retryable: false,
      message: expect.stringMatching(/not installed/),
    });
  });
});

describe('LocalDirFileSource: confinement and verified reads', () => {
  let root: string;
  let outside: string;
  let src: LocalDirFileSource;
  beforeAll(() => {
    const base = mkdtempSync(join(tmpdir(), 'hcm-dirsrc-'));
    root = join(base, 'root');
    outside = join(base, 'outside');
    mkdirSync(join(root, 'isos', '子目录'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.txt'), 'secret');
    writeFileSync(join(root, 'isos', '子目录', 'a b.iso'), 'iso bytes');
    symlinkSync(join(outside, 'secret.txt'), join(root, 'file-out'));
    symlinkSync(outside, join(root, 'dir-out'));
    symlinkSync('isos/子目录/a b.iso', join(root, 'link-in'));
    execFileSync('mkfifo', [join(root, 'a-fifo')]);
    src = new LocalDirFileSource({ name: 'mnt', root });
  });
  afterAll(() => rmSync(join(root, '..'), { recursive: true, force: true }));

  it('lists files and folders, leaves out links that leave the root and special files, follows links that stay inside', async () => {
    const names = (await src.readdir('', 100)).entries.map((e) => `${e.name}:${e.type}:${e.size}`);
    expect(names.sort()).toEqual(['isos:DIR:0', 'link-in:FILE:9']);
    expect((await src.readdir('isos/子目录', 100)).entries).toEqual([expect.objectContaining({ name: 'a b.iso', path: 'isos/子目录/a b.iso', size: 9 })]);
    expect((await readAll((await src.open('link-in')).stream)).toString()).toBe('iso bytes');
  });

  it('refuses symlinks that leave the root (FILE_PATH_INVALID, SYMLINK_ESCAPE), as a file or as a folder on the way', async () => {
    for (const p of ['file-out', 'dir-out', 'dir-out/secret.txt']) {
      const e = await failureOf(src.stat(p));
      expect(e).toMatchObject({ code: 'FILE_PATH_INVALID', details: { reason: 'SYMLINK_ESCAPE' } });
      expect(await failureOf(src.open(p))).toMatchObject({ code: 'FILE_PATH_INVALID' });
    }
    expect(await failureOf(src.readdir('dir-out', 10))).toMatchObject({ code: 'FILE_PATH_INVALID' });
    expect(await failureOf(src.open('isos'))).toMatchObject({ code: 'FILE_NOT_A_FILE' });
    expect(await failureOf(src.open('nope'))).toMatchObject({ code: 'FILE_NOT_FOUND' });
  });

  it('a file cut or deleted while it is read fails loudly', async () => {
    const p = join(root, 'big.raw');
    bigFile(p, 32 * MiB);
    let file = await src.open('big.raw');
    expect((await failureOf(readAround(file.stream, () => truncateSync(p, MiB)))).code).toBe('FILE_SHORT_READ');
    bigFile(p, 8 * MiB);
    file = await src.open('big.raw');
    expect(await failureOf(readAround(file.stream, () => unlinkSync(p)))).toMatchObject({
      code: 'FILE_NOT_FOUND',
      message: expect.stringMatching(/deleted while/),
    });
  });
});

describe('BucketFileSource on the in-process S3 server', () => {
  let s3: S3TestServer;
  let storage: MinioStorage;
  let src: BucketFileSource;
  const endpoint = () => ({ endPoint: '127.0.0.1', port: s3.port, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: 'us-east-1' });
  const DATA = randomFillSync(Buffer.alloc(7 * MiB + 3));

  beforeAll(async () => {
    s3 = await startS3Server();
    storage = new MinioStorage({ ...endpoint(), bucket: 'images', partSizeBytes: 5 * MiB });
    await storage.init();
    await storage.client.makeBucket('drop', 'us-east-1');
    await storage.client.putObject('drop', 'incoming/isos/中文 镜像.iso', DATA);
    await storage.client.putObject('drop', 'incoming/isos/sub/x.raw', Buffer.from('x'));
    await storage.client.putObject('drop', 'incoming/top.raw', Buffer.from('top'));
    await storage.client.putObject('drop', 'elsewhere.raw', Buffer.from('no'));
    src = new BucketFileSource({ name: 'drop', bucket: 'drop', prefix: 'incoming', endpoint: endpoint(), sameStore: true });
  });
  afterAll(async () => {
    await s3?.close();
  });

  it('lists a prefix as folders and files, stats and streams an object', async () => {
    expect((await src.readdir('', 100)).entries.map((e) => `${e.path}:${e.type}`).sort()).toEqual(['isos:DIR', 'top.raw:FILE']);
    expect((await src.readdir('isos', 100)).entries.map((e) => `${e.path}:${e.type}:${e.size}`).sort()).toEqual([
      'isos/sub:DIR:0',
      `isos/中文 镜像.iso:FILE:${DATA.length}`,
    ]);
    expect(await src.stat('isos')).toMatchObject({ type: FileEntryType.Dir });
    expect(await failureOf(src.stat('nope'))).toMatchObject({ code: 'FILE_NOT_FOUND' });
    expect(await failureOf(src.readdir('top.raw', 10))).toMatchObject({ code: 'FILE_NOT_A_DIRECTORY' });
    expect(sha(await readAll((await src.open('isos/中文 镜像.iso')).stream))).toBe(sha(DATA));
  });

  it('copies server-side into the images bucket when it is the same store', async () => {
    expect(src.canCopyInto(storage)).toBe(true);
    const copied = await src.copyInto(storage, 'isos/中文 镜像.iso', 'images/copied/disk', {});
    expect(copied).toMatchObject({ key: 'images/copied/disk', size: DATA.length, sourceSize: DATA.length });
    expect(sha(await readAll(await storage.getStream('images/copied/disk')))).toBe(sha(DATA));
    const other: FileSource = new BucketFileSource({ name: 'x', bucket: 'drop', prefix: '', endpoint: endpoint(), sameStore: false });
    expect(other.canCopyInto(storage)).toBe(false);
    expect(await other.copyInto(storage, 'top.raw', 'images/no/disk', {})).toBeNull();
  });
});

describe('a FILE import survives kill -9 of the service (embedded shape: SQLite, in-process jobs, filesystem store)', () => {
  const SECRET = 'smb-crash-secret-0123456789abcdef0123456789';
  const USER = signToken({ sub: 'crash-user', dept: 'crash-dept', role: Role.User, name: 'user' }, SECRET);
  const SUPER = signToken({ sub: 'crash-root', dept: 'ops', role: Role.SuperAdmin, name: 'root' }, SECRET);
  const SIZE = 160 * MiB + 77;
  let smbd: SmbdServer;
  let fileSha: string;
  const children: ServiceProcess[] = [];

  beforeAll(() => {
    ensureBuilt();
  }, 200_000);
  beforeAll(async () => {
    smbd = await startSmbd();
    fileSha = bigFile(join(smbd.shareDir, 'crash me.raw'), SIZE);
  }, 60_000);
  afterAll(async () => {
    for (const c of children) await c.kill9();
    await smbd?.close();
  });

  const call = async (svc: ServiceProcess, method: string, path: string, token: string, body?: unknown) => {
    const res = await fetch(svc.url(path), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const poll = async (svc: ServiceProcess, id: string, cond: (i: Record<string, any>) => boolean, what: string) => {
    const end = Date.now() + 60_000;
    for (;;) {
      const r = await call(svc, 'GET', `/images/${id}`, SUPER).catch(() => ({ status: 0, body: {} as Record<string, any> }));
      if (r.status === 200 && cond(r.body)) return r.body;
      if (Date.now() > end) throw new Error(`image ${id} never got ${what}: ${JSON.stringify(r.body)}\n${svc.output().slice(-3000)}`);
      await new Promise((res) => setTimeout(res, 30));
    }
  };

  it('kill -9 mid-transfer, start again: the import runs again from the share to READY with the right checksum, nothing left behind', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-smb-crash-'));
    const root = join(dataDir, 'objects');
    const env = {
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      SEED_DEFAULT_ZONE: 'false',
      IMPORT_CONCURRENCY: '2',
      DB_TYPE: 'sqlite',
      DB_PATH: join(dataDir, 'db.sqlite'),
      STORAGE_DRIVER: 'fs',
      STORAGE_FS_ROOT: root,
      FILE_SOURCES: `share=${smbd.url()}`,
      FILE_SOURCE_PASSWORDS: `share=${encodeURIComponent(smbd.password)}`,
    };
    try {
      const first = await startServiceProcess(env, 'service #1');
      children.push(first);
      const zone = await call(first, 'POST', '/zones', SUPER, { name: 'crash-zone', hypervisor: 'KVM' });
      const created = await call(first, 'POST', '/images', USER, {
        kind: 'IMAGE',
        name: 'crash',
        osCategory: 'CENTOS',
        format: 'raw',
        zoneId: zone.body.id,
        source: { type: 'FILE', path: 'crash me.raw' },
      });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      await poll(first, id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      const deadPid = first.proc.pid!;
      await first.kill9();
      // the dead process's smbclient goes (its stdout is gone), its half-written temp file stays
      await until(() => smbclients(smbd.port).length === 0, 'the orphaned smbclient exited');
      expect(readdirSync(join(root, 'images', id)).length).toBeGreaterThan(0);
      expect(readdirSync('/dev/shm').some((d) => d.startsWith(`hcm-smb-${deadPid}-`))).toBe(true);

      const second = await startServiceProcess(env, 'service #2');
      children.push(second);
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ phase: 'READY', sizeBytes: SIZE, checksum: fileSha, statusReason: null });
      expect(readdirSync(join(root, 'images', id))).toEqual(['disk']);
      const q = await call(second, 'GET', '/quotas/crash-dept', SUPER);
      expect(q.body.resources.find((r: Record<string, any>) => r.resource === 'IMAGE_BYTES')).toMatchObject({ used: SIZE, reserved: 0 });
      // the credentials the dead process left were removed by the next one
      expect(readdirSync('/dev/shm').some((d) => d.startsWith(`hcm-smb-${deadPid}-`))).toBe(false);
      await second.stop();
      expect(readdirSync('/dev/shm').some((d) => d.startsWith(`hcm-smb-${second.proc.pid}-`))).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
