import { randomUUID } from 'node:crypto';
import { constants, Dirent, fdatasync } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix, relative, sep } from 'node:path';
import { Transform, Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { releaseChunk } from './chunk-pool';
import { DirectFileWriter, supportsDirectIo } from './direct-io';
import {
  adoptBody,
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  ByteRange,
  IncompleteUpload,
  ObjectNotFoundError,
  ObjectStat,
  ObjectStorage,
  PutOptions,
  PutResult,
  ResumePoint,
  StorageError,
} from './object-storage';

/** Bytes between two early write-backs of a file being written. */
const WRITE_BACK_EVERY = 64 * 1024 * 1024;

/**
 * A pass-through in front of `out` that asks the kernel to write the file back (fdatasync, in the background,
 * one at a time) every WRITE_BACK_EVERY bytes written through the page cache. The disk then works while the bytes
 * still stream in, and the fsync before the rename has little left: without it, a 2 GiB upload waited seconds
 * after its last byte for the whole file to reach the disk (the page cache holds it all, nothing is written back
 * before the fsync). What `out` wrote with O_DIRECT is on the disk already and is not counted, so an object written
 * past the cache asks for no write-back (each one would only flush the device's cache).
 */
function writeBackEarly(out: DirectFileWriter): Transform {
  let flushedAt = 0;
  let flushing: Promise<void> | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const cached = out.bytesWritten - out.directBytes;
      const fd = out.fd;
      if (!flushing && cached - flushedAt >= WRITE_BACK_EVERY && typeof fd === 'number') {
        flushedAt = cached;
        flushing = new Promise<void>((resolve) => fdatasync(fd, () => resolve())).finally(() => (flushing = undefined));
      }
      cb(null, chunk);
    },
    // the file is closed once `out` finishes: no write-back may still be running on its descriptor then
    flush(cb) {
      void (flushing ?? Promise.resolve()).then(() => cb());
    },
  });
}

const TEMP_RE = /^\.(.+)\.([0-9a-f-]{36})\.incomplete$/;

/** The sidecar of a resumable temp file `.<name>.<uuid>.incomplete`: `.<name>.<uuid>.resume` (JSON: meta, boot). */
const sidecarOf = (tmp: string): string => tmp.replace(/\.incomplete$/, '.resume');

/**
 * This boot of the machine: a temp file written during it has all its bytes (in the page cache at least) even
 * when the process that wrote them died; after a reboot its unsynced tail may be lost, so it is not resumed.
 */
let bootIdOnce: Promise<string> | undefined;
const bootId = (): Promise<string> =>
  (bootIdOnce ??= readFile('/proc/sys/kernel/random/boot_id', 'utf8').then(
    (t) => t.trim(),
    () => 'unknown',
  ));

/** Passes on what comes after the first `n` bytes (a resumed put: those are already in the file). */
function skipFirst(n: number): Transform {
  let left = n;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (left <= 0) return cb(null, chunk);
      if (chunk.length <= left) {
        left -= chunk.length;
        // a dropped pooled chunk goes back to its pool (a partly kept one is released by the writer)
        releaseChunk(chunk);
        return cb();
      }
      const rest = chunk.subarray(left);
      left = 0;
      cb(null, rest);
    },
  });
}

const isErrno = (e: unknown, ...codes: string[]): boolean => codes.includes((e as NodeJS.ErrnoException)?.code ?? '');

/**
 * Local filesystem adapter: the object `a/b/c` is the file `<root>/a/b/c`. An upload is written to a
 * hidden temp file beside it (`.c.<uuid>.incomplete`), fsync'ed, then renamed over the key, so a
 * reader sees the old object or the new one, never a partial one.
 */
export class FsStorage extends ObjectStorage {
  readonly driver = 'fs';
  private initialised?: Promise<void>;
  private directOk?: Promise<boolean>;
  /** bytes this adapter wrote with O_DIRECT (for tests and benchmarks) */
  directBytes = 0;

  /** `directIo` (default true): whole pooled MiBs are written with O_DIRECT where the root's filesystem allows it */
  constructor(
    readonly root: string,
    private readonly opts: { directIo?: boolean } = {},
  ) {
    super();
  }

  /** Whether durable objects are written with O_DIRECT (probed once on the root: tmpfs cannot). */
  private directIo(): Promise<boolean> {
    if (this.opts.directIo === false) return Promise.resolve(false);
    return (this.directOk ??= supportsDirectIo(this.root));
  }

  init(): Promise<void> {
    this.initialised ??= mkdir(this.root, { recursive: true }).then(
      () => undefined,
      (e: unknown) => {
        this.initialised = undefined;
        throw e;
      },
    );
    return this.initialised;
  }

  override localPath(key: string): string {
    assertValidKey(key);
    return this.pathOf(key);
  }

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  async putStream(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    adoptBody(body);
    assertValidKey(key);
    try {
      await this.init();
      if (opts.signal?.aborted) throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
    } catch (e) {
      body.destroy();
      throw e;
    }
    const target = this.pathOf(key);
    const resume = opts.resume?.key === key && opts.resume.keepId ? opts.resume : undefined;
    const tmp = join(dirname(target), resume ? resume.keepId! : `.${basename(target)}.${randomUUID()}.incomplete`);
    const sidecar = opts.resumeMeta !== undefined || resume ? sidecarOf(tmp) : undefined;
    try {
      await mkdir(dirname(target), { recursive: true });
      if (resume) {
        // the dead run's temp file, cut back to the bytes it is known to hold; the body's first bytes are those
        const fh = await open(tmp, 'r+');
        try {
          await fh.truncate(resume.offset);
        } finally {
          await fh.close();
        }
      } else if (sidecar) {
        await writeFile(sidecar, JSON.stringify({ meta: opts.resumeMeta, boot: await bootId() }), { flag: 'wx', mode: 0o640 });
      }
      // pooled chunks (the ingest pipeline's) go back to their pool once written; a durable object's whole MiBs
      // go past the page cache (direct-io.ts: a conversion's source is read again at once, so it keeps the cache)
      const out = new DirectFileWriter(tmp, {
        flags: resume ? 'r+' : 'wx',
        start: resume?.offset ?? 0,
        mode: 0o640,
        direct: !opts.transient && (await this.directIo()),
      });
      const stages: (Transform | Writable)[] = resume ? [skipFirst(resume.offset)] : [];
      if (!opts.transient) stages.push(writeBackEarly(out));
      await pipeline(body, ...(stages as [Transform]), out, { signal: opts.signal });
      const size = (resume?.offset ?? 0) + out.bytesWritten;
      this.directBytes += out.directBytes;
      if (!opts.transient) {
        const fh = await open(tmp, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await rename(tmp, target);
      if (sidecar) await unlink(sidecar).catch(() => undefined);
      return { key, size };
    } catch (e) {
      body.destroy();
      await unlink(tmp).catch(() => undefined);
      if (sidecar) await unlink(sidecar).catch(() => undefined);
      if (opts.signal?.aborted || (e as Error)?.name === 'AbortError') {
        throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
      }
      // the temp file vanished under us: abortIncomplete removed it
      if (isErrno(e, 'ENOENT') && (e as NodeJS.ErrnoException).path === tmp) {
        throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
      }
      throw e;
    }
  }

  override async adoptFile(key: string, path: string): Promise<PutResult | null> {
    assertValidKey(key);
    await this.init();
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const fh = await open(path, 'r+');
    let size: number;
    try {
      size = (await fh.stat()).size;
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(path, target);
    } catch (e) {
      if (isErrno(e, 'EXDEV')) return null; // another filesystem: the caller copies
      throw e;
    }
    return { key, size };
  }

  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    assertValidRange(range);
    let fh;
    try {
      fh = await open(this.pathOf(key), 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key);
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ObjectNotFoundError(key);
      let start = 0;
      let end: number | undefined;
      if (range) {
        if (range.start >= st.size) {
          throw new StorageError('RANGE_NOT_SATISFIABLE', `Range start ${range.start} is past the end of ${key} (${st.size} bytes)`);
        }
        start = range.start;
        end = Math.min(range.end ?? st.size - 1, st.size - 1);
      }
      return fh.createReadStream({ start, end, autoClose: true });
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async stat(key: string): Promise<ObjectStat> {
    assertValidKey(key);
    try {
      const st = await stat(this.pathOf(key));
      if (!st.isFile()) throw new ObjectNotFoundError(key);
      return { key, size: st.size, lastModified: st.mtime, etag: `${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}` };
    } catch (e) {
      if (isErrno(e, 'ENOENT', 'ENOTDIR')) throw new ObjectNotFoundError(key);
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await unlink(this.pathOf(key));
    } catch (e) {
      if (!isErrno(e, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw e;
    }
  }

  async presignGet(key: string): Promise<string | null> {
    assertValidKey(key);
    return null;
  }

  async listIncomplete(keyPrefix: string): Promise<IncompleteUpload[]> {
    assertValidPrefix(keyPrefix);
    await this.init();
    // start at the deepest directory the prefix names fully
    const slash = keyPrefix.lastIndexOf('/');
    const startDir = slash >= 0 ? this.pathOf(keyPrefix.slice(0, slash)) : this.root;
    const found: IncompleteUpload[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT', 'ENOTDIR')) return;
        throw e;
      }
      for (const ent of entries) {
        const full = join(dir, ent.name);
        if (ent.isDirectory()) {
          await walk(full);
          continue;
        }
        const m = ent.isFile() ? TEMP_RE.exec(ent.name) : null;
        if (!m) continue;
        const relDir = relative(this.root, dir).split(sep).filter(Boolean).join('/');
        const key = relDir ? posix.join(relDir, m[1]) : m[1];
        if (!key.startsWith(keyPrefix)) continue;
        const st = await stat(full).catch(() => null);
        if (!st) continue;
        found.push({ key, id: ent.name, initiated: st.birthtimeMs > 0 ? st.birthtime : st.ctime });
      }
    };
    await walk(startDir);
    return found;
  }

  async abortIncomplete(keyPrefix: string, opts: { olderThan?: Date; keep?: string } = {}): Promise<number> {
    let n = 0;
    for (const u of await this.listIncomplete(keyPrefix)) {
      if (opts.olderThan && u.initiated >= opts.olderThan) continue;
      if (opts.keep !== undefined && u.id === opts.keep) continue;
      const file = join(dirname(this.pathOf(u.key)), u.id);
      try {
        await unlink(file);
        n++;
      } catch (e) {
        if (!isErrno(e, 'ENOENT')) throw e;
      }
      await unlink(sidecarOf(file)).catch(() => undefined);
    }
    return n;
  }

  /** The largest temp file of `key` that has a sidecar written during this boot: appended to in place. */
  override async takeOverIncomplete(key: string): Promise<ResumePoint | null> {
    assertValidKey(key);
    const boot = await bootId();
    let best: ResumePoint | null = null;
    for (const u of await this.listIncomplete(key)) {
      if (u.key !== key) continue;
      const file = join(dirname(this.pathOf(key)), u.id);
      try {
        const side = JSON.parse(await readFile(sidecarOf(file), 'utf8')) as { meta?: unknown; boot?: unknown };
        if (typeof side.meta !== 'string' || side.boot !== boot || boot === 'unknown') continue;
        const size = (await stat(file)).size;
        if (size > 0 && (!best || size > best.offset)) best = { key, offset: size, meta: side.meta, keepId: u.id };
      } catch (e) {
        if (!isErrno(e, 'ENOENT') && !(e instanceof SyntaxError)) throw e;
      }
    }
    return best;
  }

  override async readTakenOver(point: ResumePoint): Promise<Readable> {
    assertValidKey(point.key);
    if (!point.keepId || point.offset <= 0) throw new StorageError('OBJECT_NOT_FOUND', `Nothing kept of ${point.key}`);
    const fh = await open(join(dirname(this.pathOf(point.key)), point.keepId), 'r');
    return fh.createReadStream({ start: 0, end: point.offset - 1, autoClose: true, highWaterMark: 1024 * 1024 });
  }

  async ping(): Promise<void> {
    await this.init();
    await access(this.root, constants.R_OK | constants.W_OK);
  }
}
