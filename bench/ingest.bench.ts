/**
 * npm run bench:ingest
 * A file served over loopback HTTP (by the test image server, from disk) is ingested by the service, run as
 * its own process, (a) into the filesystem store and (b) into the S3 store (the in-process S3 test server,
 * run as a separate process). For each size in BENCH_SIZES (default "256M,2G") it prints:
 *   - MB/s of `curl -s -o /dev/null` of the same URL (the ceiling: download only, nothing stored);
 *   - MB/s of a bare minio-client putObject of the same HTTP stream into the same S3 server;
 *   - MB/s of the service from POST /images to READY (download, sha256, format check, store, verify),
 *     its ratio to curl and, for S3, to the bare client;
 *   - the service's RSS: at rest before the import, the peak sampled every 25 ms during it, and the growth.
 * Each measurement runs BENCH_RUNS times (default 2), interleaved; the best rate and the worst RSS are printed
 * with every run's figure (the machine is shared: the load average is printed too).
 * Then (c) the same file from an SMB share through the SMB file source, against `smbclient get` (bench/ingest-smb.ts).
 * The filesystem import also runs a second time with INGEST_HASH_WORKER=false INGEST_YOUNG_GC=false (the old
 * path: sha256 on the main thread, a fresh 1 MiB buffer per MiB, no scavenges asked for), in the same round, and
 * every service run prints its full (mark-compact) garbage collections (bench/gc-counter.js).
 * Targets (issue 16): fs >= 0.8 x curl -o file + fdatasync (the machine's durable-write limit); S3 >= 1.0 x the
 * bare client; peak RSS growth < 128 MiB at every size.
 * With BENCH_RESUME_AB=1 each service import runs a second time with INGEST_RESUME_AFTER_CRASH=false (no resume
 * record kept beside the upload, no take-over lookup: the path before resumable imports), interleaved, and the
 * ratio on/off is printed (target: >= 0.95, the normal path at most 5% slower for resumability).
 * BENCH_NODE_OPTIONS adds to the service's node options (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`); BENCH_SMB=0 leaves (c) out;
 * BENCH_ENV='A=1,B=2' adds settings to every service run (the old path keeps its own).
 * It measures and prints; it asserts nothing. Files are deleted afterwards.
 */
import 'reflect-metadata';
import { apiOf } from './support';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { signToken } from '../src/access/jwt';
import { Role } from '../src/access/principal';
import { ImageServer } from '../test/support/image-server';
import { benchSmbSource } from './ingest-smb';
import { REPO_ROOT, startServiceProcess } from '../test/support/service-process';
import { Readable } from 'node:stream';
import { FsStorage } from '../src/storage/fs-storage';
import { MinioStorage } from '../src/storage/minio-storage';
import { ObjectStorage } from '../src/storage/object-storage';

/**
 * What resumability adds to an import that is not resumed, measured alone (the import's own rate is too noisy on a
 * shared machine to show a few milliseconds): the take-over lookup at the start (`takeOverIncomplete`, nothing to
 * find) and the resume record written beside the upload and removed at its end (`resumeMeta`), as the difference
 * between puts of one small multipart object with and without them, interleaved, median of `n` each.
 */
async function resumeBookkeepingMs(storage: ObjectStorage, bytes: number, n = 15): Promise<{ on: number; off: number }> {
  const data = Buffer.alloc(bytes, 7);
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const resumable of i % 2 ? [false, true] : [true, false]) {
      const key = `images/bench-${resumable ? 'on' : 'off'}-${i}/disk`;
      const t0 = process.hrtime.bigint();
      if (resumable) await storage.takeOverIncomplete(key);
      await storage.putStream(key, Readable.from([data]), resumable ? { resumeMeta: JSON.stringify({ url: 'http://bench/x', etag: '"e"', size: bytes }) } : {});
      (resumable ? on : off).push(Number(process.hrtime.bigint() - t0) / 1e6);
      await storage.delete(key);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { on: median(on), off: median(off) };
}

const MiB = 1024 * 1024;
const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const TOKEN = signToken({ sub: 'bench', dept: 'bench', role: Role.SuperAdmin, name: 'bench' }, SECRET);
const PART_MB = Number(process.env.BENCH_PART_MB ?? 16);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 2));

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G']);
}
const SIZES = (process.env.BENCH_SIZES ?? '256M,2G').split(',').map(parseSize);

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
const mib = (bytes: number) => (bytes / MiB).toFixed(1);
const label = (bytes: number) => (bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(bytes % (1024 * MiB) ? 1 : 0)} GiB` : `${mib(bytes)} MiB`);

/** Writes `size` bytes of random data (a 16 MiB random block repeated) and returns its sha256. */
async function makeFile(path: string, size: number): Promise<string> {
  const block = randomFillSync(Buffer.alloc(16 * MiB));
  block.write('RAW!', 0, 'latin1');
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  for (let left = size; left > 0;) {
    const piece = left >= block.length ? block : block.subarray(0, left);
    hash.update(piece);
    if (!out.write(piece)) await once(out, 'drain');
    left -= piece.length;
  }
  out.end();
  await once(out, 'finish');
  return hash.digest('hex');
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { cwd: opts.cwd, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd}: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

async function curlSeconds(url: string): Promise<number> {
  const out = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{time_total}', url]);
  return Number(out.trim());
}

/**
 * The same download made durable the way the filesystem store makes it before READY: curl to a file on the
 * same disk, then fdatasync (`sync -d`). Not the target's reference (that is curl to /dev/null), but it shows
 * how much of the gap is the disk.
 */
async function curlToDiskSeconds(url: string, dir: string): Promise<number> {
  const file = join(dir, `curl-${Date.now()}.bin`);
  const t0 = process.hrtime.bigint();
  await run('curl', ['-s', '-o', file, url]);
  await run('sync', ['-d', file]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(file, { force: true });
  return seconds;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

const majorGcs = (log: string) => (log.match(/\[bench-gc\] major/g) ?? []).length;

function rssOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** The in-process S3 test server, in a process of its own. */
async function startS3(directory: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const script = `require(${JSON.stringify(join(REPO_ROOT, 'dist', 'test', 'support', 's3-server.js'))}).startS3Server({ directory: ${JSON.stringify(directory)} }).then((s) => console.log('PORT ' + s.port))`;
  const proc = spawn(process.execPath, ['-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (c) => reject(new Error(`S3 server exited ${c}`)));
  });
  return {
    port,
    stop: async () => {
      proc.kill('SIGTERM');
      if (proc.exitCode === null) await once(proc, 'exit');
    },
  };
}

/** A bare minio-client putObject of the HTTP stream (known length), in a process of its own. */
async function bareClient(url: string, s3Port: number, size: number): Promise<{ seconds: number; cpu: number }> {
  const script = `
    const Minio = require('minio'); const http = require('node:http');
    const c = new Minio.Client({ endPoint: '127.0.0.1', port: ${s3Port}, useSSL: false, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1', pathStyle: true, partSize: ${PART_MB * MiB} });
    (async () => {
      if (!(await c.bucketExists('bare'))) await c.makeBucket('bare', 'us-east-1');
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const res = await new Promise((ok, ko) => http.get(${JSON.stringify(url)}, ok).on('error', ko));
      await c.putObject('bare', 'object', res, ${size});
      const cu = process.cpuUsage(c0);
      console.log('SECONDS ' + Number(process.hrtime.bigint() - t0) / 1e9 + ' CPU ' + (cu.user + cu.system) / 1e6);
      await c.removeObject('bare', 'object');
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = await run(process.execPath, ['-e', script], { cwd: REPO_ROOT });
  const m = /SECONDS ([\d.]+) CPU ([\d.]+)/.exec(out)!;
  return { seconds: Number(m[1]), cpu: Number(m[2]) };
}

interface ServiceRun {
  seconds: number;
  cpu: number;
  rssBase: number;
  rssPeak: number;
  hwm: number;
  ok: boolean;
  reason?: string;
  /** full (mark-compact) collections in the service during the import */
  gcs: number;
}

/** Starts the service on `env`, imports `url`, measures POST -> READY and the RSS. */
async function serviceIngest(env: Record<string, string>, url: string, size: number, sha: string): Promise<ServiceRun> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-bench-ingest-'));
  const svc = await startServiceProcess(
    {
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: SECRET,
      LOG_LEVEL: 'log', // the import's end is read from its log line: no polling load on the service
      URL_ALLOW_CIDRS: '127.0.0.0/8',
      SEED_DEFAULT_ZONE: 'true',
      RATE_LIMIT_CREATE_PER_MIN: '0',
      STORAGE_PART_SIZE_MB: String(PART_MB),
      NODE_OPTIONS: `--require ${join(REPO_ROOT, 'dist', 'bench', 'gc-counter.js')} ${process.env.BENCH_NODE_OPTIONS ?? ''}`.trim(),
      // BENCH_ENV='A=1,B=2': extra settings for every service run (an arm's own settings, e.g. the old path's, win)
      ...Object.fromEntries(
        (process.env.BENCH_ENV ?? '')
          .split(',')
          .filter(Boolean)
          .map((kv) => kv.split('=') as [string, string]),
      ),
      ...env,
    },
    'service',
  );
  const api = apiOf(svc, TOKEN);
  try {
    const zoneId = (await api('GET', '/zones')).items[0].id as string;
    await new Promise((r) => setTimeout(r, 1000)); // let start-up garbage settle
    const pid = svc.proc.pid!;
    const rssBase = rssOf(pid).rss;
    let rssPeak = rssBase;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssOf(pid).rss)), 25);
    const cpu0 = cpuOf(pid);
    const gc0 = majorGcs(svc.output());
    const t0 = process.hrtime.bigint();
    const created = await api('POST', '/images', { kind: 'IMAGE', name: 'bench', osCategory: 'OTHER', format: 'raw', zoneId, source: { type: 'URL', url } });
    // the end of the import: its log line ("Imported <id>", or the failure); a poll every 2 s as a fallback
    let seconds = 0;
    let image: Record<string, any> = created;
    for (let n = 0; image.phase !== 'READY' && image.phase !== 'FAILED'; n++) {
      if (!seconds && new RegExp(`(Imported|Import of) ${created.id}`).test(svc.output())) seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (seconds || n % 400 === 399) image = await api('GET', `/images/${created.id}`);
      else await new Promise((r) => setTimeout(r, 5));
    }
    seconds ||= Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = cpuOf(pid) - cpu0;
    const gcs = majorGcs(svc.output()) - gc0;
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, rssOf(pid).rss);
    const { hwm } = rssOf(pid);
    const ok = image.phase === 'READY' && image.checksum === sha && image.sizeBytes === size;
    return { seconds, cpu, rssBase, rssPeak, hwm, gcs, ok, reason: ok ? undefined : `${image.phase}: ${image.statusReason ?? `checksum ${image.checksum}`}` };
  } finally {
    await svc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'hcm-bench-files-'));
  const srv = await new ImageServer().start();
  console.log(
    `ingest benchmark: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, S3 part size ${PART_MB} MiB, best of ${RUNS} run(s) each`,
  );
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log('targets: fs >= 0.8 x curl -o file + fdatasync; S3 >= 1.0 x bare minio putObject; peak RSS growth < 128 MiB\n');
  try {
    for (const size of SIZES) {
      const file = join(work, `bench-${size}.raw`);
      const sha = await makeFile(file, size);
      const url = srv.url(srv.put(`bench-${size}.raw`, { path: file }));
      // warm the page cache so every reader gets the same disk
      for await (const _ of createReadStream(file, { highWaterMark: 4 * MiB })) void _;

      const s3dir = mkdtempSync(join(work, 's3-'));
      const s3 = await startS3(s3dir);
      const curl: number[] = [];
      const curlDisk: number[] = [];
      const bare: number[] = [];
      const bareCpu: number[] = [];
      const fs: ServiceRun[] = [];
      const fsOld: ServiceRun[] = [];
      const s3runs: ServiceRun[] = [];
      const ab = process.env.BENCH_RESUME_AB === '1';
      const fsOff: ServiceRun[] = [];
      const s3Off: ServiceRun[] = [];
      const OFF = { INGEST_RESUME_AFTER_CRASH: 'false' };
      const bookkeeping: { name: string; on: number; off: number }[] = [];
      try {
        // interleaved, so a burst of load elsewhere on the machine hits every contender alike
        for (let run = 0; run < RUNS; run++) {
          curl.push(mbps(size, await curlSeconds(url)));
          curlDisk.push(mbps(size, await curlToDiskSeconds(url, work)));
          // with the A/B, the order of on and off alternates between runs
          if (ab && run % 2 === 0) fsOff.push(await serviceIngest({ STORAGE_DRIVER: 'fs', ...OFF }, url, size, sha));
          fs.push(await serviceIngest({ STORAGE_DRIVER: 'fs' }, url, size, sha));
          if (ab && run % 2 === 1) fsOff.push(await serviceIngest({ STORAGE_DRIVER: 'fs', ...OFF }, url, size, sha));
          fsOld.push(await serviceIngest({ STORAGE_DRIVER: 'fs', INGEST_HASH_WORKER: 'false', INGEST_YOUNG_GC: 'false' }, url, size, sha));
          const b = await bareClient(url, s3.port, size);
          bare.push(mbps(size, b.seconds));
          bareCpu.push(b.cpu);
          const s3env = {
            STORAGE_DRIVER: 'minio',
            MINIO_ENDPOINT: '127.0.0.1',
            MINIO_PORT: String(s3.port),
            MINIO_ACCESS_KEY: 'S3RVER',
            MINIO_SECRET_KEY: 'S3RVER',
            MINIO_BUCKET: 'bench',
          };
          if (ab && run % 2 === 0) s3Off.push(await serviceIngest({ ...s3env, ...OFF }, url, size, sha));
          s3runs.push(await serviceIngest(s3env, url, size, sha));
          if (ab && run % 2 === 1) s3Off.push(await serviceIngest({ ...s3env, ...OFF }, url, size, sha));
        }
        if (ab) {
          // two parts: a multipart upload, as every import larger than a part
          const s3store = new MinioStorage({
            endPoint: '127.0.0.1',
            port: s3.port,
            useSSL: false,
            accessKey: 'S3RVER',
            secretKey: 'S3RVER',
            bucket: 'bench',
            region: 'us-east-1',
            partSizeBytes: 5 * MiB,
          });
          bookkeeping.push({ name: 'S3', ...(await resumeBookkeepingMs(s3store, 6 * MiB)) });
          const fsdir = mkdtempSync(join(work, 'fs-'));
          bookkeeping.push({ name: 'fs', ...(await resumeBookkeepingMs(new FsStorage(fsdir), 6 * MiB)) });
          rmSync(fsdir, { recursive: true, force: true });
        }
      } finally {
        await s3.stop();
        rmSync(s3dir, { recursive: true, force: true });
      }
      const best = (xs: number[]) => Math.max(...xs);
      const cpuSecs = (xs: number[]) => xs.map((x) => x.toFixed(1)).join('/');
      const all = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
      const curlBest = best(curl);
      const bareBest = best(bare);
      const fsRates = fs.map((r) => mbps(size, r.seconds));
      const fsOldRates = fsOld.map((r) => mbps(size, r.seconds));
      const s3Rates = s3runs.map((r) => mbps(size, r.seconds));
      const rss = (rs: ServiceRun[]) => {
        const worst = rs.reduce((a, b) => (b.rssPeak - b.rssBase > a.rssPeak - a.rssBase ? b : a));
        const gib = size / (1024 * MiB);
        return `peak RSS +${mib(worst.rssPeak - worst.rssBase)} MiB (at rest ${mib(worst.rssBase)}, peak ${mib(worst.rssPeak)}, worst run), CPU ${cpuSecs(rs.map((r) => r.cpu))} s, full GCs per GiB ${rs.map((r) => (r.gcs / gib).toFixed(0)).join('/')}`;
      };
      const failed = [...fs, ...fsOld, ...s3runs, ...fsOff, ...s3Off].filter((r) => !r.ok);
      console.log(`file ${label(size)} (${size} bytes), served over loopback HTTP`);
      console.log(`  curl -o /dev/null           ${curlBest.toFixed(1).padStart(8)} MB/s   runs: ${all(curl)}`);
      console.log(
        `  curl -o file + fdatasync    ${best(curlDisk).toFixed(1).padStart(8)} MB/s   ${(best(curlDisk) / curlBest).toFixed(2)} x curl   runs: ${all(curlDisk)}`,
      );
      console.log(
        `  (a) service -> fs           ${best(fsRates).toFixed(1).padStart(8)} MB/s   ${(best(fsRates) / curlBest).toFixed(2)} x curl   ${(best(fsRates) / best(curlDisk)).toFixed(2)} x curl+fdatasync   ${rss(fs)}   runs: ${all(fsRates)}`,
      );
      console.log(
        `  (a0) service -> fs, old path ${best(fsOldRates).toFixed(1).padStart(7)} MB/s   ${(best(fsOldRates) / curlBest).toFixed(2)} x curl   ${(best(fsOldRates) / best(curlDisk)).toFixed(2)} x curl+fdatasync   ${rss(fsOld)}   runs: ${all(fsOldRates)}   new / old ${(best(fsRates) / best(fsOldRates)).toFixed(2)}`,
      );
      console.log(
        `  bare minio putObject -> S3  ${bareBest.toFixed(1).padStart(8)} MB/s   ${(bareBest / curlBest).toFixed(2)} x curl   CPU ${cpuSecs(bareCpu)} s   runs: ${all(bare)}`,
      );
      console.log(
        `  (b) service -> S3           ${best(s3Rates).toFixed(1).padStart(8)} MB/s   ${(best(s3Rates) / bareBest).toFixed(2)} x bare client   ${(best(s3Rates) / curlBest).toFixed(2)} x curl   ${rss(s3runs)}   runs: ${all(s3Rates)}`,
      );
      if (ab) {
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        for (const [name, on, off] of [
          ['fs', fsRates, fsOff.map((r) => mbps(size, r.seconds))],
          ['S3', s3Rates, s3Off.map((r) => mbps(size, r.seconds))],
        ] as const) {
          console.log(
            `  resume after a crash, ${name}: on ${best(on).toFixed(1)} MB/s, off (INGEST_RESUME_AFTER_CRASH=false) ${best(off).toFixed(1)} MB/s: on/off ${(best(on) / best(off)).toFixed(3)} best, ${(median(on) / median(off)).toFixed(3)} median   off runs: ${all(off)}`,
          );
          // the cost alone, against the import it is added to (its best time here): the normal path's slow-down
          const b = bookkeeping.find((x) => x.name === name)!;
          const importMs = (size / 1e6 / best(on)) * 1000;
          const added = Math.max(0, b.on - b.off);
          console.log(
            `  resume bookkeeping alone, ${name}: a 6 MiB put ${b.on.toFixed(1)} ms with it, ${b.off.toFixed(1)} ms without (median of 15 each): +${added.toFixed(1)} ms per import = ${((100 * added) / importMs).toFixed(3)}% of this import (${importMs.toFixed(0)} ms); normal path at ${(importMs / (importMs + added)).toFixed(4)} x (target >= 0.95)`,
          );
        }
      }
      for (const f of failed) console.log(`  NOT OK: ${f.reason}`);
      console.log(
        `  load average after: ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}\n`,
      );
      // (c) the same file from an SMB share (bench/ingest-smb.ts); BENCH_SMB=0 leaves it out
      if (process.env.BENCH_SMB !== '0') await benchSmbSource({ file, size, sha, runs: RUNS });
      rmSync(file, { force: true });
    }
  } finally {
    await srv.close();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
