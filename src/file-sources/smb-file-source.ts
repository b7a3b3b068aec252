import { ChildProcess, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { FileSourceError } from './file-source.errors';
import { DirListing, FileEntry, FileEntryType, FileSource, FileSourceKind, OpenOptions, RawRead } from './file-source';
import { baseName, isAcceptableName, joinPath } from './file-path';
import { SmbCredentialFile } from './smb-credentials';
import { messagesOf, parseStat, parseGetSize, parseLs, smbFailure } from './smbclient-output';

export interface SmbSourceSpec {
  name: string;
  host: string;
  port: number;
  share: string;
  /** folder inside the share that is the source's root ('' = the share itself), normalised */
  root: string;
  user: string;
  domain?: string;
  password: string;
}

export interface SmbClientOptions {
  /** the smbclient binary (FILE_SOURCE_SMBCLIENT) */
  smbclient: string;
  /** a listing or stat must finish, and a read must deliver a byte, within this (FILE_SOURCE_TIMEOUT_MS) */
  timeoutMs: number;
}

/** The only environment smbclient gets: no USER/PASSWD (smbclient reads both), UTC times, UTF-8 names. */
const CHILD_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', TZ: 'UTC', LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
/** listings and stats running at once per source (each is an smbclient process) */
const TEXT_CONCURRENCY = 4;
/** the most output a listing may print (10 000 entries take about 1 MB) */
const MAX_TEXT_BYTES = 32 * 1024 * 1024;

const quote = (remote: string) => `"${remote}"`;

/**
 * An SMB share read through the `smbclient` binary as a subprocess (apt package `smbclient`). The pure-JS SMB2
 * clients measured on this stack fail on STATUS_PENDING or truncate large reads silently (stack-facts section
 * 6); smbclient streams at 170-215 MiB/s with NTLMv2. smbclient itself ends a file that shrinks while it is
 * read with exit status 0 and fewer bytes: the length is therefore verified against what the file had when
 * it was opened, and the file is checked again once read (FileSource.open).
 *
 * Secrets: the user and password reach smbclient as an authentication file (`-A`, mode 0600 in a private
 * directory under /dev/shm, see SmbCredentialFile), so the password is never on a command line (`ps`), in the
 * child's environment or in a message. Commands go to smbclient's stdin rather than `-c`, so names may hold
 * `;` (which `-c` splits on, even inside quotes), and paths do not show in `ps` either.
 *
 * Every call is one smbclient process: `ls "dir\*"` to list, `allinfo` to stat, `get "path" -` to stream to
 * stdout (messages on stderr with -E). A read is killed when its consumer stops, the import is cancelled, or
 * no byte arrives for timeoutMs.
 */
export class SmbFileSource extends FileSource {
  readonly kind = FileSourceKind.Smb;
  readonly name: string;
  readonly location: string;
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly children = new Set<ChildProcess>();
  private readonly credentials: SmbCredentialFile;

  constructor(
    private readonly spec: SmbSourceSpec,
    private readonly opts: SmbClientOptions,
  ) {
    super();
    this.name = spec.name;
    this.credentials = new SmbCredentialFile(() => `username=${spec.user}\npassword=${spec.password}\n${spec.domain ? `domain=${spec.domain}\n` : ''}`);
    // the UNC path users type (R14: "\\<ip>" in the file manager); UNC has no port, so another port shows as a URL
    this.location =
      spec.port === 445
        ? `\\\\${spec.host}\\${spec.share}${spec.root ? `\\${spec.root.replace(/\//g, '\\')}` : ''}`
        : `smb://${spec.host}:${spec.port}/${spec.share}${spec.root ? `/${spec.root}` : ''}`;
  }

  /** `isos/a.iso` -> `\root\isos\a.iso` (inside the share) */
  private remote(path: string): string {
    return `\\${(path === '' ? this.spec.root : joinPath(this.spec.root, path)).replace(/\//g, '\\')}`;
  }

  private what(path: string): string {
    return `${path === '' ? 'the root folder' : path} on file source ${this.name} (${this.location})`;
  }

  async readdir(dir: string, maxEntries: number): Promise<DirListing> {
    const remote = this.remote(dir);
    const output = await this.text(`ls ${quote(remote === '\\' ? '\\*' : `${remote}\\*`)}`);
    const failure = smbFailure(messagesOf(output), this.what(dir));
    if (failure) {
      // `ls "file\*"` of a file answers not found; say what it is
      if (failure.code === 'FILE_NOT_FOUND' && dir !== '') {
        const st = await this.stat(dir).catch(() => null);
        if (st?.type === FileEntryType.File) throw new FileSourceError('FILE_NOT_A_DIRECTORY', `${this.what(dir)} is a file, not a folder`);
      }
      throw failure;
    }
    const all = parseLs(output).filter((e) => isAcceptableName(e.name));
    const entries: FileEntry[] = all.slice(0, maxEntries).map((e) => ({
      name: e.name,
      path: joinPath(dir, e.name),
      type: e.isDir ? FileEntryType.Dir : FileEntryType.File,
      size: e.isDir ? 0 : e.size,
      modifiedAt: e.modifiedAt,
    }));
    return { entries, truncated: all.length > maxEntries };
  }

  async stat(path: string): Promise<FileEntry> {
    if (path === '') return { name: '', path: '', type: FileEntryType.Dir, size: 0, modifiedAt: new Date(0) };
    // allinfo for the attributes and the write time, ls for a size above 4 GiB (parseStat), in one smbclient run
    const remote = quote(this.remote(path));
    const output = await this.text(`allinfo ${remote}\nls ${remote}`);
    const info = parseStat(output, baseName(path));
    if (!info)
      throw (
        smbFailure(messagesOf(output), this.what(path)) ??
        new FileSourceError('FILE_SOURCE_FAILED', `${this.what(path)}: smbclient printed no file information`)
      );
    return { name: baseName(path), path, type: info.isDir ? FileEntryType.Dir : FileEntryType.File, size: info.size ?? 0, modifiedAt: info.modifiedAt };
  }

  protected async openRaw(path: string, opts: OpenOptions): Promise<RawRead> {
    const before = await this.stat(path);
    if (before.type !== FileEntryType.File) throw new FileSourceError('FILE_NOT_A_FILE', `${this.what(path)} is a folder, not a file`);
    opts.signal?.throwIfAborted();
    const child = this.spawn(`get ${quote(this.remote(path))} -`, true, await this.credentials.path());
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-64 * 1024)));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
    let stopped: FileSourceError | undefined;
    const stop = (why: FileSourceError) => {
      stopped ??= why;
      this.kill(child);
    };
    // no byte for timeoutMs: the server hangs (smbclient's own -t only bounds single requests)
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => stop(new FileSourceError('FILE_SOURCE_TIMEOUT', `${this.what(path)}: no data for ${this.opts.timeoutMs} ms`)),
        this.opts.timeoutMs,
      );
      idle.unref();
    };
    arm();
    const stdout = child.stdout!;
    stdout.on('data', arm);
    const onAbort = () => stop(new FileSourceError('FILE_READ_INTERRUPTED', `${this.what(path)}: the read was cancelled`));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      clearTimeout(idle);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    void exited.then(cleanup);

    return {
      stream: stdout as Readable,
      size: before.size,
      modifiedAt: before.modifiedAt,
      cancel: () => {
        cleanup();
        this.kill(child);
      },
      finish: async (bytes) => {
        const { code, signal } = await exited;
        cleanup();
        if (stopped) throw stopped;
        const what = this.what(path);
        if (child.spawnError) throw child.spawnError;
        const failure =
          smbFailure(messagesOf(stderr), what) ??
          (code !== 0 || signal
            ? new FileSourceError('FILE_READ_INTERRUPTED', `${what}: smbclient ended with ${signal ?? `exit status ${code}`} after ${bytes} bytes`)
            : null);
        if (failure) {
          // a file cut while it is read makes smbclient stumble over the missing end (INVALID_NETWORK_RESPONSE,
          // END_OF_FILE): call it what it is when the file is now shorter
          if (bytes < before.size && failure.code === 'FILE_READ_INTERRUPTED') {
            const now = await this.stat(path).catch(() => null);
            if (now && now.size < before.size) {
              throw new FileSourceError(
                'FILE_SHORT_READ',
                `Reading ${what} stopped after ${bytes} of ${before.size} bytes: the file shrank to ${now.size} bytes while it was read`,
                {
                  details: { bytesRead: bytes, size: before.size, status: failure.details?.status },
                },
              );
            }
          }
          throw failure;
        }
        const announced = parseGetSize(stderr);
        if (announced === undefined)
          throw new FileSourceError('FILE_READ_INTERRUPTED', `${what}: smbclient did not confirm the transfer (read ${bytes} bytes)`);
        if (announced !== before.size)
          throw new FileSourceError('FILE_CHANGED', `${what} changed size between opening (${before.size} bytes) and reading (${announced} bytes)`);
        if (bytes !== before.size) return; // the length check reports it, as FILE_SHORT_READ
        // smbclient reads a file deleted meanwhile to its end (the server still holds it open), and one
        // rewritten in place as it is: look again
        let after: FileEntry;
        try {
          after = await this.stat(path);
        } catch (e) {
          if (e instanceof FileSourceError && e.code === 'FILE_NOT_FOUND') {
            throw new FileSourceError('FILE_NOT_FOUND', `${what} was deleted while it was being read`, { retryable: false });
          }
          throw e;
        }
        if (after.size !== before.size || after.modifiedAt.getTime() !== before.modifiedAt.getTime()) {
          throw new FileSourceError(
            'FILE_CHANGED',
            `${what} changed while it was being read (size ${before.size} -> ${after.size}, modified ${before.modifiedAt.toISOString()} -> ${after.modifiedAt.toISOString()})`,
          );
        }
      },
    };
  }

  override async close(): Promise<void> {
    for (const c of this.children) this.kill(c);
    await this.credentials.remove();
  }

  // ------------------------------------------------------------------ the smbclient process

  /** Runs one command that prints text (ls, allinfo): stdout and stderr together, within timeoutMs. */
  private async text(command: string): Promise<string> {
    const auth = await this.credentials.path();
    await this.slot();
    try {
      const child = this.spawn(command, false, auth);
      let out = '';
      let size = 0;
      const take = (d: Buffer) => {
        size += d.length;
        if (size <= MAX_TEXT_BYTES) out += d.toString('utf8');
        else this.kill(child);
      };
      child.stdout!.on('data', take);
      child.stderr!.on('data', take);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        this.kill(child);
      }, this.opts.timeoutMs);
      await new Promise<void>((resolve) => child.once('close', () => resolve()));
      clearTimeout(timer);
      if (child.spawnError) throw child.spawnError;
      if (timedOut)
        throw new FileSourceError('FILE_SOURCE_TIMEOUT', `File source ${this.name} (${this.location}) did not answer within ${this.opts.timeoutMs} ms`);
      if (size > MAX_TEXT_BYTES)
        throw new FileSourceError('FILE_SOURCE_FAILED', `File source ${this.name}: the listing is larger than ${MAX_TEXT_BYTES} bytes`);
      return out;
    } finally {
      this.release();
    }
  }

  private spawn(command: string, dataOnStdout: boolean, authFile: string): ChildProcess & { spawnError?: FileSourceError } {
    const { host, port, share } = this.spec;
    const args = [
      `//${host}/${share}`,
      '-p',
      String(port),
      '-s',
      '/dev/null',
      '-A',
      authFile,
      '-t',
      String(Math.max(1, Math.ceil(this.opts.timeoutMs / 1000))),
    ];
    if (dataOnStdout) args.push('-E');
    const child: ChildProcess & { spawnError?: FileSourceError } = spawn(this.opts.smbclient, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: CHILD_ENV,
      windowsHide: true,
    });
    this.children.add(child);
    child.once('close', () => this.children.delete(child));
    child.once('error', (e: NodeJS.ErrnoException) => {
      child.spawnError = new FileSourceError(
        'FILE_SOURCE_FAILED',
        e.code === 'ENOENT'
          ? `smbclient is not installed (FILE_SOURCE_SMBCLIENT=${this.opts.smbclient})`
          : `smbclient could not be started: ${e.code ?? e.message}`,
        { retryable: false },
      );
      // 'close' may not follow a failed spawn on every Node version
      child.emit('close', null, null);
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(`${command}\n`);
    return child;
  }

  private kill(child: ChildProcess): void {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    t.unref();
    child.once('close', () => clearTimeout(t));
  }

  private async slot(): Promise<void> {
    if (this.running < TEXT_CONCURRENCY) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
