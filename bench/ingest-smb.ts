/**
 * The SMB file source in `npm run bench:ingest` (bench/ingest.bench.ts calls `benchSmbSource` for every size),
 * or alone: `node dist/bench/ingest-smb.js` (BENCH_SIZES, BENCH_RUNS as there).
 *
 * The bench file is served by a real smbd on a loopback port (test/support/smbd.ts; needs root, samba and
 * smbclient) and imported by the service, run as its own process with the filesystem store, from
 * POST /images { source: { type: 'FILE' } } to READY (smbclient -> sha256 -> format check -> store -> verify).
 * Printed, best of the runs with every run's figure:
 *   - MB/s of `smbclient get "<file>" /dev/null` (the ceiling: the same client, nothing hashed or stored);
 *   - MB/s of the service, and its ratio to that;
 *   - the service's RSS growth (peak sampled every 25 ms minus at rest) and the peak RSS of its smbclient child.
 * Target: >= 0.5 x smbclient get (stored to disk and hashed on 2 cores); service RSS growth < 128 MiB.
 */
import 'reflect-metadata';
import { apiOf } from './support';
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, linkSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../src/access/jwt';
import { Role } from '../src/access/principal';
import { startServiceProcess } from '../test/support/service-process';
import { smbdAvailable, startSmbd, SmbdServer } from '../test/support/smbd';

const MiB = 1024 * 1024;
const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const TOKEN = signToken({ sub: 'bench', dept: 'bench', role: Role.SuperAdmin, name: 'bench' }, SECRET);

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
const mib = (bytes: number) => (bytes / MiB).toFixed(1);

function rssOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** The smbclient processes talking to `port`. */
function smbclients(port: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        return cmd[0].endsWith('smbclient') && cmd.includes(String(port));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Seconds of `smbclient get "<name>" /dev/null`, with an authentication file of its own; with `toDisk`, of
 * `smbclient get` into a file on the service's disk followed by fdatasync (`sync -d`): the durable-write limit.
 */
async function smbclientGet(smbd: SmbdServer, name: string, toDisk = false): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-bench-smbauth-'));
  const auth = join(dir, 'auth');
  const dest = toDisk ? join(dir, 'copy.bin') : '/dev/null';
  writeFileSync(auth, `username=${smbd.user}\npassword=${smbd.password}\n`, { mode: 0o600 });
  try {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const c = spawn('smbclient', [`//127.0.0.1/${smbd.share}`, '-p', String(smbd.port), '-s', '/dev/null', '-A', auth, '-E'], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let err = '';
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.stdin.end(`get "${name}" ${dest}\n`);
      c.once('close', () => (/NT_STATUS_/.test(err) ? reject(new Error(err)) : resolve()));
    });
    if (toDisk) {
      await new Promise<void>((resolve, reject) =>
        spawn('sync', ['-d', dest], { stdio: 'ignore' }).once('close', (code) => (code === 0 ? resolve() : reject(new Error(`sync ${code}`)))),
      );
    }
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Run {
  seconds: number;
  rssGrowth: number;
  rssBase: number;
  childPeak: number;
  ok: boolean;
  reason?: string;
}

/** The service on the fs store with the share as its file source: POST /images (FILE) -> READY. */
async function serviceRun(smbd: SmbdServer, name: string, size: number, sha: string, env: Record<string, string> = {}): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-bench-smb-'));
  const svc = await startServiceProcess(
    {
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      SEED_DEFAULT_ZONE: 'true',
      RATE_LIMIT_CREATE_PER_MIN: '0',
      STORAGE_DRIVER: 'fs',
      FILE_SOURCES: `share=${smbd.url()}`,
      FILE_SOURCE_PASSWORDS: `share=${encodeURIComponent(smbd.password)}`,
      ...env,
    },
    'service',
  );
  const api = apiOf(svc, TOKEN);
  try {
    const zoneId = (await api('GET', '/zones')).items[0].id as string;
    await new Promise((r) => setTimeout(r, 1000)); // let start-up garbage settle
    const pid = svc.proc.pid!;
    const rssBase = rssOf(pid);
    let rssPeak = rssBase;
    let childPeak = 0;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssOf(pid));
      for (const c of smbclients(smbd.port)) childPeak = Math.max(childPeak, rssOf(c));
    }, 25);
    const t0 = process.hrtime.bigint();
    const created = await api('POST', '/images', {
      kind: 'IMAGE',
      name: 'bench-smb',
      osCategory: 'OTHER',
      format: 'raw',
      zoneId,
      source: { type: 'FILE', path: name },
    });
    let image: Record<string, any> = created;
    while (image.phase !== 'READY' && image.phase !== 'FAILED' && image.id) {
      await new Promise((r) => setTimeout(r, 50));
      image = await api('GET', `/images/${created.id}`);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, rssOf(pid));
    const ok = image.phase === 'READY' && image.checksum === sha && image.sizeBytes === size;
    return {
      seconds,
      rssBase,
      rssGrowth: rssPeak - rssBase,
      childPeak,
      ok,
      reason: ok ? undefined : `${image.phase ?? image.code}: ${image.statusReason ?? image.message ?? `checksum ${image.checksum}`}`,
    };
  } finally {
    await svc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Measures the SMB source on `file` (already written, sha256 `sha`) and prints its lines. */
export async function benchSmbSource(o: { file: string; size: number; sha: string; runs: number }): Promise<void> {
  if (!smbdAvailable()) {
    console.log('  SMB source: skipped (needs root, samba and smbclient: scripts/install-system-packages.sh)\n');
    return;
  }
  const smbd = await startSmbd();
  const name = 'bench file.raw';
  try {
    try {
      linkSync(o.file, join(smbd.shareDir, name));
    } catch {
      copyFileSync(o.file, join(smbd.shareDir, name));
    }
    const get: number[] = [];
    const getDisk: number[] = [];
    const runs: Run[] = [];
    const oldRuns: Run[] = [];
    for (let run = 0; run < o.runs; run++) {
      get.push(mbps(o.size, await smbclientGet(smbd, name)));
      getDisk.push(mbps(o.size, await smbclientGet(smbd, name, true)));
      runs.push(await serviceRun(smbd, name, o.size, o.sha));
      // the old path in the same round: sha256 on the main thread, fresh buffers, no scavenges asked for
      oldRuns.push(await serviceRun(smbd, name, o.size, o.sha, { INGEST_HASH_WORKER: 'false', INGEST_YOUNG_GC: 'false' }));
    }
    const best = (xs: number[]) => Math.max(...xs);
    const all = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
    const rates = runs.map((r) => mbps(o.size, r.seconds));
    const oldRates = oldRuns.map((r) => mbps(o.size, r.seconds));
    const worst = runs.reduce((a, b) => (b.rssGrowth > a.rssGrowth ? b : a));
    console.log(`  SMB share (smbd on loopback), same file`);
    console.log(`  smbclient get -> /dev/null  ${best(get).toFixed(1).padStart(8)} MB/s   runs: ${all(get)}`);
    console.log(`  smbclient get -> file + fdatasync ${best(getDisk).toFixed(1).padStart(8)} MB/s   runs: ${all(getDisk)}`);
    console.log(
      `  (c0) service SMB -> fs, old path ${best(oldRates).toFixed(1).padStart(8)} MB/s   ${(best(oldRates) / best(getDisk)).toFixed(2)} x get+fdatasync   runs: ${all(oldRates)}`,
    );
    console.log(
      `  (c) service SMB -> fs       ${best(rates).toFixed(1).padStart(8)} MB/s   ${(best(rates) / best(get)).toFixed(2)} x smbclient get   ${(best(rates) / best(getDisk)).toFixed(2)} x get+fdatasync (goal 0.8)   new / old ${(best(rates) / best(oldRates)).toFixed(2)}   peak RSS +${mib(worst.rssGrowth)} MiB (at rest ${mib(worst.rssBase)}, worst run), smbclient child peak ${mib(Math.max(...runs.map((r) => r.childPeak)))} MiB   runs: ${all(rates)}`,
    );
    for (const r of [...runs, ...oldRuns].filter((x) => !x.ok)) console.log(`  NOT OK: ${r.reason}`);
    console.log(
      `  load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
    );
  } finally {
    await smbd.close();
  }
}

// ---------------------------------------------------------------- alone

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G']);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'hcm-bench-smbfiles-'));
  try {
    for (const size of (process.env.BENCH_SIZES ?? '256M,2G').split(',').map(parseSize)) {
      const file = join(work, `bench-${size}.raw`);
      const block = randomFillSync(Buffer.alloc(16 * MiB));
      block.write('RAW!', 0, 'latin1');
      const hash = createHash('sha256');
      const fd = openSync(file, 'w');
      for (let left = size; left > 0; left -= block.length) {
        const piece = left >= block.length ? block : block.subarray(0, left);
        writeSync(fd, piece);
        hash.update(piece);
      }
      closeSync(fd);
      console.log(`file ${mib(size)} MiB (${size} bytes)`);
      await benchSmbSource({ file, size, sha: hash.digest('hex'), runs: Math.max(1, Number(process.env.BENCH_RUNS ?? 2)) });
      rmSync(file, { force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
