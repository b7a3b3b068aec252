import { constants, promises as fsp, Stats } from 'node:fs';
import { join, sep } from 'node:path';
import { FileSourceError } from './file-source.errors';
import { DirListing, FileEntry, FileEntryType, FileSource, FileSourceKind, OpenOptions, RawRead } from './file-source';
import { baseName, isAcceptableName, joinPath } from './file-path';

export interface DirSourceSpec {
  name: string;
  /** absolute path of the directory (the share mounted on the host) */
  root: string;
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/**
 * A directory on this host: the SMB share mounted (cifs, or the share's own disk on the same machine).
 *
 * Confinement: paths are normalised before they get here (no `..`, not absolute), and every path is resolved
 * with realpath and must stay under the root's realpath, so a symlink that leaves the root is refused
 * (FILE_PATH_INVALID, reason SYMLINK_ESCAPE) and left out of listings. A file is opened, then the path its
 * descriptor really names (/proc/self/fd) is checked again, so a symlink swapped in between the check and the
 * open cannot lead outside either. Only regular files and directories are listed; sockets, devices and FIFOs
 * are left out.
 */
export class LocalDirFileSource extends FileSource {
  readonly kind = FileSourceKind.Dir;

  override get readsFromOffset(): boolean {
    return true;
  }
  readonly name: string;
  readonly location = null;
  private realRoot?: Promise<string>;

  constructor(private readonly spec: DirSourceSpec) {
    super();
    this.name = spec.name;
  }

  private what(path: string): string {
    return `${path === '' ? 'the root folder' : path} on file source ${this.name}`;
  }

  private root(): Promise<string> {
    this.realRoot ??= fsp.realpath(this.spec.root).catch((e: unknown) => {
      this.realRoot = undefined;
      throw new FileSourceError('FILE_SOURCE_UNREACHABLE', `File source ${this.name}: its directory is not there (${errno(e) ?? String(e)})`);
    });
    return this.realRoot;
  }

  private inside(root: string, real: string): boolean {
    return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
  }

  /** The real path of `path` (symlinks resolved), refused when it leaves the root. */
  private async resolve(path: string): Promise<string> {
    const root = await this.root();
    let real: string;
    try {
      real = await fsp.realpath(join(root, path));
    } catch (e) {
      throw this.fsError(e, path);
    }
    if (!this.inside(root, real)) {
      throw new FileSourceError('FILE_PATH_INVALID', `${this.what(path)} leads outside the file source (a symbolic link)`, {
        details: { reason: 'SYMLINK_ESCAPE', path },
      });
    }
    return real;
  }

  private fsError(e: unknown, path: string): FileSourceError {
    switch (errno(e)) {
      case 'ENOENT':
        return new FileSourceError('FILE_NOT_FOUND', `${this.what(path)}: no such file or folder`);
      case 'ENOTDIR':
        return new FileSourceError('FILE_NOT_FOUND', `${this.what(path)}: a folder on the way is a file`);
      case 'EACCES':
      case 'EPERM':
        return new FileSourceError('FILE_ACCESS_DENIED', `${this.what(path)}: the service may not read it`);
      case 'ELOOP':
        return new FileSourceError('FILE_PATH_INVALID', `${this.what(path)}: too many symbolic links`, { details: { reason: 'SYMLINK_LOOP', path } });
      case 'EIO':
      case 'ESTALE':
      case 'EHOSTDOWN':
      case 'ENOTCONN':
        return new FileSourceError('FILE_SOURCE_UNREACHABLE', `${this.what(path)}: the mount does not answer (${errno(e)})`);
      default:
        return new FileSourceError('FILE_SOURCE_FAILED', `${this.what(path)}: ${errno(e) ?? (e as Error)?.message ?? String(e)}`);
    }
  }

  private entry(path: string, st: Stats): FileEntry {
    const dir = st.isDirectory();
    return { name: baseName(path), path, type: dir ? FileEntryType.Dir : FileEntryType.File, size: dir ? 0 : st.size, modifiedAt: st.mtime };
  }

  async readdir(dir: string, maxEntries: number): Promise<DirListing> {
    const root = await this.root();
    const real = await this.resolve(dir);
    let names: string[];
    try {
      names = await fsp.readdir(real);
    } catch (e) {
      if (errno(e) === 'ENOTDIR') throw new FileSourceError('FILE_NOT_A_DIRECTORY', `${this.what(dir)} is a file, not a folder`);
      throw this.fsError(e, dir);
    }
    const entries: FileEntry[] = [];
    let truncated = false;
    for (const name of names.sort()) {
      if (!isAcceptableName(name)) continue;
      const full = join(real, name);
      let st: Stats;
      try {
        const l = await fsp.lstat(full);
        if (l.isSymbolicLink()) {
          // a link is listed as what it points at, and only when that stays inside
          if (!this.inside(root, await fsp.realpath(full))) continue;
          st = await fsp.stat(full);
        } else st = l;
      } catch {
        continue; // gone meanwhile, or a dangling link
      }
      if (!st.isFile() && !st.isDirectory()) continue;
      if (entries.length >= maxEntries) {
        truncated = true;
        break;
      }
      entries.push(this.entry(joinPath(dir, name), st));
    }
    return { entries, truncated };
  }

  async stat(path: string): Promise<FileEntry> {
    const real = await this.resolve(path);
    try {
      return this.entry(path, await fsp.stat(real));
    } catch (e) {
      throw this.fsError(e, path);
    }
  }

  protected async openRaw(path: string, opts: OpenOptions): Promise<RawRead> {
    const root = await this.root();
    const real = await this.resolve(path);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if (errno(e) === 'ELOOP')
        throw new FileSourceError('FILE_PATH_INVALID', `${this.what(path)} was replaced by a symbolic link`, { details: { reason: 'SYMLINK_ESCAPE', path } });
      throw this.fsError(e, path);
    }
    try {
      // what the descriptor really is, whatever happened to the path since it was resolved
      const opened = await fsp.readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
      if (!this.inside(root, opened))
        throw new FileSourceError('FILE_PATH_INVALID', `${this.what(path)} leads outside the file source`, { details: { reason: 'SYMLINK_ESCAPE', path } });
      const before = await handle.stat();
      if (before.isDirectory()) throw new FileSourceError('FILE_NOT_A_FILE', `${this.what(path)} is a folder, not a file`);
      if (!before.isFile()) throw new FileSourceError('FILE_NOT_A_FILE', `${this.what(path)} is not a regular file`);
      opts.signal?.throwIfAborted();
      // through the FileHandle, not its raw fd number: a destroyed or aborted stream closes the descriptor itself,
      // and a later handle.close() must not close that number again (by then it may be another file's: seen as
      // EBADF in an unrelated fs.rmSync on Node 24)
      const stream = handle.createReadStream({ autoClose: false, highWaterMark: 1024 * 1024, signal: opts.signal, start: opts.offset ?? 0 });
      let closed = false;
      const close = async () => {
        if (closed) return;
        closed = true;
        await handle.close().catch(() => undefined);
      };
      return {
        stream,
        size: before.size,
        modifiedAt: before.mtime,
        version: `${before.size}:${before.mtimeMs}:${before.ino}`,
        cancel: () => {
          stream.destroy();
          void close();
        },
        finish: async (bytes) => {
          try {
            if (bytes !== before.size) return; // FILE_SHORT_READ from the length check
            const after = await handle.stat();
            if (after.nlink === 0) throw new FileSourceError('FILE_NOT_FOUND', `${this.what(path)} was deleted while it was being read`, { retryable: false });
            if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
              throw new FileSourceError('FILE_CHANGED', `${this.what(path)} changed while it was being read (size ${before.size} -> ${after.size})`);
            }
          } finally {
            await close();
          }
        },
      };
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }
}
