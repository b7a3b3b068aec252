import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ObjectStorage, StorageError } from '../storage/object-storage';
import { DiskFormat } from './format-sniffer';
import { IngestError } from './ingestion.errors';

/**
 * qemu-img as the referee: after the streaming sniffer, the stored object is opened by the tool the hypervisor
 * itself uses (`qemu-img info`, and `qemu-img check` for qcow2) and refused when qemu's answer disagrees with the
 * declared format, names a backing or data file, or reports a format-specific danger (Glance's rules after
 * CVE-2022-47951 / CVE-2024-32498).
 *
 * qemu-img runs on untrusted input, so it runs the way Glance runs it: under hard limits (CPU seconds and address
 * space through the shell's ulimit, a wall-clock timeout that kills its whole process group), with an empty
 * environment (no proxy variables), `-f` forced to the declared format, and the image named through an explicit
 * `json:` block-driver spec (the `file` driver on a path, or the `http` driver on one loopback URL) so qemu never
 * guesses a protocol from a name and never opens backing files (`info` and `check` do not).
 */

export interface QemuImgLimits {
  /** QEMU_IMG */
  binary: string;
  /** QEMU_IMG_TIMEOUT_MS: wall clock per run; the process group is killed after it */
  timeoutMs: number;
  /** QEMU_IMG_CPU_SECONDS: RLIMIT_CPU */
  cpuSeconds: number;
  /** QEMU_IMG_MAX_MEMORY_MB: RLIMIT_AS */
  maxMemoryMb: number;
  /** wall clock and CPU seconds of one `convert` (default DEFAULT_CONVERT_*) */
  convertTimeoutMs?: number;
  convertCpuSeconds?: number;
  /** RLIMIT_AS of one `convert` in MiB (default DEFAULT_CONVERT_MEMORY_MB) */
  convertMemoryMb?: number;
  /** QEMU_IMG_CONVERT_RATE_BYTES: qemu-img convert's own read throttle (`-r`, bytes per second); none when unset */
  convertRateBytes?: number;
}

/** What qemu-img says about an accepted image. */
export interface QemuImageInfo {
  /** qemu's format name (vpc for VHD) */
  format: string;
  virtualSizeBytes: number;
  /** bytes the image occupies on its store, when qemu can tell (not over HTTP) */
  actualSizeBytes?: number;
}

/** Where the stored object is for qemu-img: a local file, or an HTTP(S) URL served with Range. */
export type QemuTarget = { file: string } | { url: string };

/** qemu's driver name for each declared format */
export const QEMU_FORMAT: Record<DiskFormat, string> = { qcow2: 'qcow2', raw: 'raw', iso: 'raw', vmdk: 'vmdk', vhd: 'vpc', vhdx: 'vhdx' };

/**
 * util-linux's setpriv, when there: qemu-img runs with PR_SET_PDEATHSIG=SIGKILL so it dies with the service (a
 * kill -9 of the service leaves no orphan qemu-img converting for an import that is taken back on restart).
 */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

const MAX_STDOUT = 4 * 1024 * 1024;
const MAX_STDERR = 16 * 1024;
const SIGNAL_MEANING: Record<string, string> = {
  SIGXCPU: 'it used up its CPU time limit',
  SIGKILL: 'it was killed',
  SIGSEGV: 'it crashed',
  SIGABRT: 'it aborted (out of memory under its address-space limit?)',
  SIGBUS: 'it crashed',
};

export interface RunOptions {
  timeoutMs?: number;
  cpuSeconds?: number;
  memoryMb?: number;
  /** kills the process group; the run rejects with ABORTED */
  signal?: AbortSignal;
  /** every piece of stdout as it arrives */
  onStdout?: (chunk: string) => void;
}

/** The formats a conversion writes (what a zone can require). */
export type ConvertFormat = 'raw' | 'qcow2';

export interface ConvertOptions {
  signal?: AbortSignal;
  /** progress as a fraction 0..1, each time qemu-img reports a new value */
  onProgress?: (fraction: number) => void;
  timeoutMs?: number;
  cpuSeconds?: number;
  /**
   * Write the output with O_DIRECT (`-t none`): past the page cache, so a large conversion is not throttled with
   * every other writer of the machine (balance_dirty_pages) and its result is on the disk when qemu-img exits (the
   * fsync before READY has nothing left to write). Only on a filesystem that supports O_DIRECT (not tmpfs):
   * see `supportsDirectIo`.
   */
  directOutput?: boolean;
}

/** A conversion's wall clock and CPU time when the limits name none: a 1 TiB disk at 300 MB/s takes about an hour. */
export const DEFAULT_CONVERT_TIMEOUT_MS = 4 * 3600_000;
export const DEFAULT_CONVERT_CPU_SECONDS = 4 * 3600;
/**
 * A conversion's address space: `convert -W` runs its writes from a pool of threads whose stacks are address space
 * (not memory used); under the 1 GiB of an `info` it aborts ("qemu_thread_create: Resource temporarily
 * unavailable") on any disk of a few hundred MiB. Still a hard bound, at least the run's own limit.
 */
export const DEFAULT_CONVERT_MEMORY_MB = 4096;

/** Whether files in a directory can be opened with O_DIRECT: qemu-img then writes the conversion with `-t none`. */
export { supportsDirectIo } from '../storage/direct-io';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The first meaningful line of qemu-img's error output, without the program name. */
function firstError(stderr: string): string {
  const line = stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  return (line ?? '').replace(/^qemu-img:\s*/, '').slice(0, 300);
}

const tooLarge = (n: unknown): boolean => typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0;

export class QemuImg {
  constructor(readonly limits: QemuImgLimits) {}

  /**
   * Runs qemu-img with `args` under the limits: `sh -c 'ulimit -t; ulimit -v; exec [setpriv --pdeathsig KILL] qemu-img ...'`
   * in a process group of its own, killed (SIGKILL to the group) when the wall clock runs out or the service dies.
   */
  run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const { binary } = this.limits;
    const cpuSeconds = opts.cpuSeconds ?? this.limits.cpuSeconds;
    const maxMemoryMb = opts.memoryMb ?? this.limits.maxMemoryMb;
    const timeoutMs = opts.timeoutMs ?? this.limits.timeoutMs;
    const script = 'ulimit -t "$1" && ulimit -v "$2" && shift 2 && exec "$@"';
    return new Promise((resolve, reject) => {
      const command = SETPRIV ? [SETPRIV, '--pdeathsig', 'KILL', binary, ...args] : [binary, ...args];
      const child = spawn('/bin/sh', ['-c', script, 'qemu-img-limited', String(cpuSeconds), String(maxMemoryMb * 1024), ...command], {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        // MALLOC_ARENA_MAX: glibc gives each thread that mallocs concurrently an arena of its own, a 64 MiB
        // reservation, up to 8 per core; with qemu-img's I/O threads that filled the address-space limit (ulimit
        // -v) on a busy machine, and the next thread or coroutine stack could not be mapped: qemu-img aborted
        // (SIGABRT) and a sound image was refused. CI saw a `compare` of two 4 MiB images abort under 1 GiB while
        // two test files ran at once; reproduced with 4 x 60 such compares beside 3 busy loops: 5 aborts
        // ("failed to allocate memory for stack", "qemu_thread_create: Resource temporarily unavailable"),
        // and none with two arenas.
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', MALLOC_ARENA_MAX: '2' },
      });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (d: Buffer) => {
        opts.onStdout?.(d.toString('utf8'));
        if (stdout.length < MAX_STDOUT) stdout += d.toString('utf8');
      });
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < MAX_STDERR) stderr += d.toString('utf8');
      });
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, timeoutMs);
      let aborted = false;
      const onAbort = () => {
        aborted = true;
        killGroup();
      };
      if (opts.signal?.aborted) onAbort();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('error', (e) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (aborted) {
          killGroup();
          reject(new IngestError('ABORTED', 'qemu-img was stopped: the operation was cancelled'));
          return;
        }
        // anything it left behind in its group goes too
        killGroup();
        resolve({ code, signal, stdout, stderr, timedOut });
      });
    });
  }

  /** `qemu-img --version` and the formats/protocols it supports; throws when it cannot run. */
  async probe(): Promise<{ version: string; drivers: string[] }> {
    // on no image: the address-space limit is for untrusted input, not for asking what qemu-img is
    const r = await this.run(['--help'], { timeoutMs: Math.max(this.limits.timeoutMs, 5000), memoryMb: Math.max(this.limits.maxMemoryMb, 1024) });
    const version = /qemu-img version (\S+)/.exec(r.stdout)?.[1];
    if (!version)
      throw new Error(
        `"${this.limits.binary} --help" did not answer like qemu-img (exit ${r.code ?? r.signal}): ${firstError(r.stderr) || r.stdout.slice(0, 200)}`,
      );
    const drivers = (/Supported formats:(.*)/.exec(r.stdout)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
    return { version, drivers };
  }

  /** The json: spec naming the target with an explicit protocol driver. */
  static spec(target: QemuTarget): string {
    if ('file' in target) return `json:${JSON.stringify({ file: { driver: 'file', filename: target.file } })}`;
    const driver = target.url.startsWith('https:') ? 'https' : 'http';
    return `json:${JSON.stringify({ file: { driver, url: target.url, timeout: 30 } })}`;
  }

  private failed(what: string, r: RunResult, limits: { timeoutMs: number; cpuSeconds: number } = this.limits): IngestError {
    const named = limits === this.limits;
    if (r.timedOut) {
      return new IngestError(
        'INSPECTION_LIMIT_EXCEEDED',
        `qemu-img ${what} did not finish within ${limits.timeoutMs} ms and was stopped${named ? ' (QEMU_IMG_TIMEOUT_MS)' : ''}; the image is refused`,
        {
          details: { limit: 'timeout', timeoutMs: limits.timeoutMs },
        },
      );
    }
    if (r.signal) {
      const limit = r.signal === 'SIGXCPU' ? `its limit of ${limits.cpuSeconds} CPU seconds${named ? ' (QEMU_IMG_CPU_SECONDS)' : ''}` : undefined;
      return new IngestError(
        r.signal === 'SIGXCPU' ? 'INSPECTION_LIMIT_EXCEEDED' : 'INSPECTION_FAILED',
        `qemu-img ${what} ended with ${r.signal} (${limit ? `it used up ${limit}` : (SIGNAL_MEANING[r.signal] ?? 'a signal')}); the image is refused`,
        { details: { signal: r.signal } },
      );
    }
    const msg = firstError(r.stderr);
    if (/cannot allocate memory|out of memory|failed to allocate/i.test(r.stderr)) {
      return new IngestError(
        'INSPECTION_LIMIT_EXCEEDED',
        `qemu-img ${what} ran out of memory under its limit of ${this.limits.maxMemoryMb} MiB (QEMU_IMG_MAX_MEMORY_MB): ${msg}`,
        {
          details: { limit: 'memory', maxMemoryMb: this.limits.maxMemoryMb },
        },
      );
    }
    return new IngestError('INSPECTION_FAILED', `qemu-img could not read the file (${what}, exit ${r.code}): ${msg || 'no message'}`, {
      details: { exitCode: r.code },
    });
  }

  /**
   * `qemu-img info` (and `check` for qcow2) on the stored object, with the format forced to the declared one.
   * @returns what qemu says about an accepted image
   * @throws IngestError FORMAT_MISMATCH / FORMAT_UNSAFE / FORMAT_UNSUPPORTED / IMAGE_CORRUPT / INSPECTION_FAILED /
   *   INSPECTION_LIMIT_EXCEEDED for a refused one; any other error when qemu-img cannot be started at all
   */
  async inspect(declared: DiskFormat, target: QemuTarget): Promise<QemuImageInfo> {
    const fmt = QEMU_FORMAT[declared];
    const spec = QemuImg.spec(target);
    const r = await this.run(['info', '--output=json', '-f', fmt, spec]);
    if (r.code !== 0 || r.signal || r.timedOut) throw this.failed('info', r);
    let info: Record<string, any>;
    try {
      info = JSON.parse(r.stdout) as Record<string, any>;
    } catch {
      throw new IngestError('INSPECTION_FAILED', 'qemu-img info answered something that is not JSON; the image is refused');
    }
    judgeInfo(declared, info, target);
    if (fmt === 'qcow2') await this.check(spec);
    return {
      format: String(info.format),
      virtualSizeBytes: info['virtual-size'] as number,
      actualSizeBytes: typeof info['actual-size'] === 'number' ? info['actual-size'] : undefined,
    };
  }

  /**
   * `qemu-img convert` of an accepted image (judged by `inspect` first) into `out.file` as `out.format`, under the
   * same limits as every run except the wall clock and CPU time, which a conversion of a large disk needs more of
   * (`opts.timeoutMs`, `opts.cpuSeconds`; default: the limits' `convertTimeoutMs`/`convertCpuSeconds`). The source
   * is named by the same explicit json: spec with its format forced; the output is a local file (raw and qcow2 are
   * written with seeks, so neither can go to a pipe), created anew. `-p` progress reaches `opts.onProgress` as a
   * fraction 0..1. An aborted `opts.signal` kills the process group and rejects with ABORTED.
   * @throws IngestError CONVERSION_FAILED (qemu-img failed), INSPECTION_LIMIT_EXCEEDED (a limit), ABORTED
   */
  async convert(declared: DiskFormat, source: QemuTarget, out: { file: string; format: ConvertFormat }, opts: ConvertOptions = {}): Promise<void> {
    if (!isAbsolute(out.file)) throw new Error(`convert: the output must be an absolute path, not "${out.file}"`);
    const limits = {
      timeoutMs: opts.timeoutMs ?? this.limits.convertTimeoutMs ?? DEFAULT_CONVERT_TIMEOUT_MS,
      cpuSeconds: opts.cpuSeconds ?? this.limits.convertCpuSeconds ?? DEFAULT_CONVERT_CPU_SECONDS,
      memoryMb: Math.max(this.limits.maxMemoryMb, this.limits.convertMemoryMb ?? DEFAULT_CONVERT_MEMORY_MB),
    };
    let last = -1;
    let pending = '';
    const onStdout = opts.onProgress
      ? (chunk: string) => {
          pending = (pending + chunk).slice(-256);
          const all = [...pending.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
          const m = all[all.length - 1];
          if (!m) return;
          const f = Math.min(1, Number(m[1]) / 100);
          if (f !== last) {
            last = f;
            opts.onProgress!(f);
          }
        }
      : undefined;
    // qcow2 output: compat 1.1 (every qemu since 1.1 reads it); raw: written out of order (-W) for speed
    const outOpts = out.format === 'qcow2' ? ['-o', 'compat=1.1'] : [];
    // an operator may throttle conversions so they do not starve the hosts' disks (qemu-img's own -r)
    if (this.limits.convertRateBytes) outOpts.push('-r', String(this.limits.convertRateBytes));
    if (opts.directOutput) outOpts.push('-t', 'none');
    const r = await this.run(['convert', '-p', '-f', QEMU_FORMAT[declared], '-O', out.format, ...outOpts, '-W', QemuImg.spec(source), out.file], {
      ...limits,
      signal: opts.signal,
      onStdout,
    });
    if (r.code === 0 && !r.signal && !r.timedOut) return;
    if (r.timedOut || r.signal === 'SIGXCPU' || /cannot allocate memory|out of memory|failed to allocate/i.test(r.stderr))
      throw this.failed('convert', r, limits);
    throw new IngestError(
      'CONVERSION_FAILED',
      `qemu-img could not convert the ${declared} image to ${out.format} (exit ${r.code ?? r.signal}): ${firstError(r.stderr) || 'no message'}`,
      {
        details: { exitCode: r.code, signal: r.signal, from: declared, to: out.format },
      },
    );
  }

  /** `qemu-img compare` of two images (formats forced): true when their guest-visible contents are identical. */
  async compare(a: { format: DiskFormat; target: QemuTarget }, b: { format: DiskFormat; target: QemuTarget }, opts: RunOptions = {}): Promise<boolean> {
    const r = await this.run(['compare', '-f', QEMU_FORMAT[a.format], '-F', QEMU_FORMAT[b.format], QemuImg.spec(a.target), QemuImg.spec(b.target)], {
      timeoutMs: this.limits.convertTimeoutMs ?? DEFAULT_CONVERT_TIMEOUT_MS,
      cpuSeconds: this.limits.convertCpuSeconds ?? DEFAULT_CONVERT_CPU_SECONDS,
      ...opts,
    });
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw this.failed('compare', r);
  }

  /** `qemu-img check`: corruptions or an incomplete check refuse the image; leaked clusters are harmless. */
  private async check(spec: string): Promise<void> {
    const r = await this.run(['check', '--output=json', '-f', 'qcow2', spec]);
    if (r.timedOut || r.signal) throw this.failed('check', r);
    let out: Record<string, any> = {};
    try {
      out = JSON.parse(r.stdout) as Record<string, any>;
    } catch {
      // exit 1 without JSON: qemu-img could not check at all
    }
    if (r.code === 0 || r.code === 3) return;
    if (r.code === 2 || (typeof out.corruptions === 'number' && out.corruptions > 0)) {
      const n = typeof out.corruptions === 'number' ? out.corruptions : 'some';
      throw new IngestError(
        'IMAGE_CORRUPT',
        `qemu-img check found ${n} corruption(s) in the qcow2 image (is it cut short?): ${firstError(r.stderr) || 'see qemu-img check'}`,
        {
          details: { corruptions: out.corruptions, checkErrors: out['check-errors'] },
        },
      );
    }
    throw this.failed('check', r);
  }
}

/** Glance's rules on qemu-img info's answer. Throws the refusal. */
export function judgeInfo(declared: DiskFormat, info: Record<string, any>, target?: QemuTarget): void {
  const fmt = QEMU_FORMAT[declared];
  if (info.format !== fmt) throw new IngestError('FORMAT_MISMATCH', `The file was declared ${declared} but qemu-img reads it as ${String(info.format)}`);
  const backing = info['backing-filename'] ?? info['full-backing-filename'];
  if (backing !== undefined) {
    throw new IngestError('FORMAT_UNSAFE', `qemu-img reports a backing file ("${String(backing).slice(0, 200)}"); only standalone images are accepted`);
  }
  if (tooLarge(info['virtual-size'])) throw new IngestError('FORMAT_UNSUPPORTED', 'qemu-img reports no usable virtual size');
  const specific = (info['format-specific'] ?? {}) as { type?: string; data?: Record<string, any> };
  const data = specific.data ?? {};
  if (fmt === 'qcow2') {
    if (data['data-file'] !== undefined || data['data-file-raw'] === true) {
      throw new IngestError(
        'FORMAT_UNSAFE',
        `qemu-img reports an external data file ("${String(data['data-file'] ?? '')}"); only self-contained images are accepted`,
      );
    }
    if (data.corrupt === true) throw new IngestError('IMAGE_CORRUPT', 'qemu-img reports the qcow2 image as marked corrupt');
    if (data.encrypt !== undefined) throw new IngestError('FORMAT_UNSUPPORTED', 'The qcow2 image is encrypted; encrypted images are not supported');
  }
  if (fmt === 'vmdk') {
    const type = String(data['create-type'] ?? '');
    if (!['monolithicSparse', 'streamOptimized'].includes(type)) {
      throw new IngestError('FORMAT_UNSUPPORTED', `qemu-img reads a VMDK of type "${type}"; only monolithicSparse and streamOptimized are accepted`);
    }
    if (data['parent-cid'] !== undefined && data['parent-cid'] !== 0xffffffff) {
      throw new IngestError('FORMAT_UNSAFE', 'qemu-img reports a VMDK delta disk (it has a parent CID); only standalone disks are accepted');
    }
    const extents = (Array.isArray(data.extents) ? data.extents : []) as { filename?: string }[];
    const own = new Set(
      [info.filename, target && 'file' in target ? target.file : undefined, target && 'url' in target ? target.url : undefined].filter(Boolean),
    );
    if (extents.length !== 1 || !own.has(extents[0].filename)) {
      throw new IngestError(
        'FORMAT_UNSAFE',
        `qemu-img reports VMDK extents in other files (${extents.map((e) => `"${String(e.filename).slice(0, 100)}"`).join(', ')}); only single-file VMDKs are accepted`,
      );
    }
  }
}

/**
 * Serves one stored object to qemu-img over loopback HTTP with Range, for stores that are not a local file (S3).
 * The curl driver needs HEAD (a SigV4 presigned GET URL refuses HEAD: the method is signed) and byte ranges; the
 * relay answers only its random path on 127.0.0.1, reads each range from the store as qemu asks for it (nothing is
 * copied to disk), and keeps the store's credentials out of qemu-img's command line (which every local user can read
 * in /proc).
 */
export async function withRangeRelay<T>(storage: ObjectStorage, key: string, size: number, fn: (url: string) => Promise<T>): Promise<T> {
  const token = randomBytes(16).toString('hex');
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void serve(req, res);
  });
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url !== `/${token}` || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' }).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (start >= size || end < start) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    try {
      const body = await storage.getStream(key, { start, end });
      res.writeHead(m ? 206 : 200, {
        'content-length': end - start + 1,
        'accept-ranges': 'bytes',
        ...(m ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
      });
      await pipeline(body, res);
    } catch (e) {
      if (!res.headersSent) res.writeHead(e instanceof StorageError && e.code === 'RANGE_NOT_SATISFIABLE' ? 416 : 502).end();
      else res.destroy();
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  try {
    return await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}/${token}`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
