/**
 * npm run bench:convert
 * Conversion on import (issue 11) through the service against bare `qemu-img convert` of the same file in the same
 * run. Two cases, each a disk of BENCH_CONVERT_SIZE (default 2G) with real, non-zero data (half random, half a
 * compressible text pattern; no holes), made with qemu-img from a raw file:
 *   - a qcow2 converted to raw (a zone requiring raw, as for Ceph);
 *   - a streamOptimized VMDK (what VMware exports) converted to qcow2 (a zone requiring qcow2).
 * The service runs as its own process (SQLite, in-process jobs, the filesystem store); the file is served over
 * loopback HTTP from disk, imported by URL into the zone, timed from POST /images to READY (download, sha256,
 * sniffer, qemu-img info/check, qemu-img convert, the same judgement of the result, the result stored and hashed).
 * References, in the same run, each round after the service's: bare `qemu-img convert` of the same LOCAL file to the
 * same target format with the service's flags (-W, compat=1.1 for qcow2), once through the page cache (qemu-img's
 * default) and once with `-t none` (O_DIRECT, as the service writes); the faster of any round is the goal's
 * reference. It fetches nothing, hashes nothing and makes nothing durable, so the service, which fetches the
 * source over HTTP, hashes it, judges it, converts, judges and hashes the result and fsyncs it, does strictly more.
 * A second reference shows the machine's real limit for that work: `curl -o` of the same URL to a local file, then
 * the same `qemu-img convert -t none`, then fdatasync (no hashing, no judging). Rounds alternate (BENCH_RUNS,
 * default 2); the best of each is compared. Printed: MB/s of each (of the disk's virtual size), the ratios (goal >=
 * 0.8 against bare convert), the service's time per phase (from its record, polled every 200 ms, and from its log
 * lines: download+sha256+sniffer+store, sniffer and qemu-img info/check on the stored source, convert, the
 * judgement of the result, its sha256+fsync+rename), and its RSS growth (VmRSS sampled every 25 ms; qemu-img is a
 * process of its own and not counted; goal < 128 MiB). It asserts nothing; every file is deleted afterwards.
 * BENCH_CONVERT_SIZE (512M, 1G, 2G), BENCH_CONVERT_CASES (raw, qcow2), BENCH_NODE_OPTIONS (the service's
 * NODE_OPTIONS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`), BENCH_SERVICE_LOG (append the service's output to a file).
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { appendFileSync, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../src/access/jwt';
import { Role } from '../src/access/principal';
import { ImageServer } from '../test/support/image-server';
import { apiOf, startService } from './support';

const MiB = 1024 * 1024;
const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const TOKEN = signToken({ sub: 'bench', dept: 'bench', role: Role.SuperAdmin, name: 'bench' }, SECRET);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 2));
const SIZE = ((s: string) => {
  const m = /^(\d+)([MG])$/i.exec(s.trim());
  if (!m) throw new Error(`BENCH_CONVERT_SIZE: 512M or 2G, not ${s}`);
  return Number(m[1]) * (m[2].toUpperCase() === 'G' ? 1024 : 1) * MiB;
})(process.env.BENCH_CONVERT_SIZE ?? '2G');

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 4 * MiB }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

/** A raw disk of `size` bytes, every 16 MiB: 8 MiB random then 8 MiB of text (compressible, not zero). */
async function makeRaw(path: string, size: number): Promise<void> {
  const block = Buffer.alloc(16 * MiB);
  randomFillSync(block, 0, 8 * MiB);
  const text = Buffer.from('hcm-image-service conversion bench: a line of guest data that deflate can squeeze.\n');
  for (let o = 8 * MiB; o < block.length; o += text.length) text.copy(block, o, 0, Math.min(text.length, block.length - o));
  const out = createWriteStream(path);
  for (let left = size; left > 0; left -= block.length) {
    if (!out.write(left >= block.length ? block : block.subarray(0, left))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** CPU seconds of `pid` and of its children it has reaped (qemu-img runs as the service's child), USER_HZ = 100. */
function cpuOf(pid: number | 'self'): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

function rssOf(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

interface Case {
  name: string;
  file: string;
  from: 'qcow2' | 'vmdk';
  qemuFrom: string;
  to: 'raw' | 'qcow2';
}

interface ServiceRun {
  seconds: number;
  cpu: number;
  rssGrowth: number;
  phases: string;
  ok: boolean;
  why?: string;
}

const targetOpts = (c: Case) => (c.to === 'qcow2' ? ['-o', 'compat=1.1'] : []);

/**
 * Bare qemu-img convert of the local file: its wall clock, its CPU seconds, and the wall clock of the same made
 * durable (+ fdatasync). `direct`: with `-t none` (O_DIRECT output, as the service writes it); otherwise through
 * the page cache (qemu-img's default for convert, `-t unsafe`: no flush at all).
 */
async function bare(c: Case, dir: string, direct: boolean): Promise<{ seconds: number; cpu: number; durable: number }> {
  const out = join(dir, `bare.${c.to}`);
  const cpu0 = cpuOf('self');
  const t0 = process.hrtime.bigint();
  await run('qemu-img', ['convert', '-f', c.qemuFrom, '-O', c.to, ...targetOpts(c), ...(direct ? ['-t', 'none'] : []), '-W', c.file, out]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuOf('self') - cpu0;
  await run('sync', ['-d', out]);
  const durable = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(out, { force: true });
  return { seconds, cpu, durable };
}

/**
 * The machine's own limit for what the service does: `curl -o` of the same URL to a local file, then the same
 * `qemu-img convert` as the service runs (`-t none`), then fdatasync of the result. No hashing, no judging.
 */
async function curlThenConvert(c: Case, url: string, dir: string): Promise<{ seconds: number; download: number }> {
  const src = join(dir, `fetched.${c.from}`);
  const out = join(dir, `fetched-out.${c.to}`);
  const t0 = process.hrtime.bigint();
  await run('curl', ['-sSf', '-o', src, url]);
  const download = Number(process.hrtime.bigint() - t0) / 1e9;
  await run('qemu-img', ['convert', '-f', c.qemuFrom, '-O', c.to, ...targetOpts(c), '-t', 'none', '-W', src, out]);
  await run('sync', ['-d', out]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(src, { force: true });
  rmSync(out, { force: true });
  return { seconds, download };
}

/** The service's own account of an import's phases, from its log lines (ms). */
function phasesFromLog(output: string, id: string): string {
  const line = (re: RegExp) => re.exec(output)?.slice(1) ?? [];
  const [fetched] = line(new RegExp(`Imported ${id}: [^"]*fetched, hashed, sniffed and stored in (\\d+) ms`));
  const [sniff, info] = line(new RegExp(`Timings of ${id}: sniffer on the stored object (\\d+) ms, qemu-img info/check (\\d+) ms`));
  const [mode, convert, judged, stored] = line(new RegExp(`Converted ${id} [^"]*\\(qemu-img convert( -t none)? (\\d+) ms, judged (\\d+) ms, stored (\\d+) ms`));
  const s = (ms?: string) => (ms === undefined ? '?' : `${(Number(ms) / 1000).toFixed(1)}s`);
  return (
    `download+sha256+sniffer+store ${s(fetched)}, sniffer on the stored file ${s(sniff)}, qemu-img info/check ${s(info)}, ` +
    `convert${mode ?? ''} ${s(convert)}, info/check of the result ${s(judged)}, sha256+fsync+rename of the result ${s(stored)}`
  );
}

async function viaService(c: Case, url: string): Promise<ServiceRun> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-bench-convert-'));
  const svc = await startService(
    {
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: SECRET,
      LOG_LEVEL: 'log',
      URL_ALLOW_CIDRS: '127.0.0.0/8',
      SEED_DEFAULT_ZONE: 'false',
      RATE_LIMIT_CREATE_PER_MIN: '0',
      DB_TYPE: 'sqlite',
      QUEUE_DRIVER: 'memory',
      STORAGE_DRIVER: 'fs',
      // the conversion's temp folder on the same disk as the store (as it is by default: the OS temp dir)
      CONVERSION_TMP_DIR: join(dataDir, 'convert'),
      // BENCH_NODE_OPTIONS: the service's NODE_OPTIONS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` for a CPU profile)
      ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}),
    },
    'service',
  ).catch((e: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  });
  const api = apiOf(svc, TOKEN);
  try {
    const zone = await api('POST', '/zones', { name: `bench-${c.to}`, hypervisor: 'KVM', requiredFormat: c.to });
    await new Promise((r) => setTimeout(r, 1000)); // start-up garbage settles
    const pid = svc.proc.pid!;
    const base = rssOf(pid);
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 25);
    const cpu0 = cpuOf(pid);
    const t0 = process.hrtime.bigint();
    const at = () => Number(process.hrtime.bigint() - t0) / 1e9;
    const created = await api('POST', '/images', {
      kind: 'IMAGE',
      name: 'bench',
      osCategory: 'OTHER',
      format: c.from,
      zoneId: zone.id,
      source: { type: 'URL', url },
    });
    const seen: [string, number][] = [];
    let image = created;
    for (;;) {
      image = await api('GET', `/images/${created.id}`);
      const t = at();
      if (seen[seen.length - 1]?.[0] !== image.phase) seen.push([image.phase as string, t]);
      if (image.phase === 'READY' || image.phase === 'FAILED') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // READY as the 200 ms poll saw it (at most 0.2 s late on runs of tens of seconds)
    const seconds = at();
    const cpu = cpuOf(pid) - cpu0;
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(pid));
    const phases = seen.map(([p, t], i) => `${p} ${((seen[i + 1]?.[1] ?? t) - t).toFixed(1)}s`).join(', ');
    const ok = image.phase === 'READY' && image.format === c.to && typeof image.sourceSha256 === 'string';
    return {
      seconds,
      cpu,
      rssGrowth: peak - base,
      phases: `${phases} | ${phasesFromLog(svc.output(), created.id as string)}`,
      ok,
      why: ok ? undefined : `${image.phase}: ${image.statusReason}`,
    };
  } finally {
    await svc.stop();
    // BENCH_SERVICE_LOG=<file>: the service's output is appended there
    if (process.env.BENCH_SERVICE_LOG) appendFileSync(process.env.BENCH_SERVICE_LOG, svc.output());
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-bench-convert-src-'));
  const srv = await new ImageServer().start();
  const started = Date.now();
  try {
    console.log(`bench:convert, ${SIZE / MiB} MiB disks, ${RUNS} alternating round(s); load average ${load()}`);
    console.log(await run('df', ['-h', tmpdir()]));
    const raw = join(dir, 'disk.raw');
    await makeRaw(raw, SIZE);
    const qcow2 = join(dir, 'disk.qcow2');
    const vmdk = join(dir, 'disk.vmdk');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
    rmSync(raw);
    const cases: Case[] = [
      { name: 'qcow2 -> raw', file: qcow2, from: 'qcow2', qemuFrom: 'qcow2', to: 'raw' },
      { name: 'streamOptimized VMDK -> qcow2', file: vmdk, from: 'vmdk', qemuFrom: 'vmdk', to: 'qcow2' },
    ];
    // BENCH_CONVERT_CASES=raw or =qcow2 runs only the case with that target
    const only = process.env.BENCH_CONVERT_CASES;
    if (only) cases.splice(0, cases.length, ...cases.filter((c) => only.split(',').includes(c.to)));
    console.log(
      `made in ${((Date.now() - started) / 1000).toFixed(0)} s: qcow2 ${(statSync(qcow2).size / MiB).toFixed(0)} MiB, streamOptimized VMDK ${(statSync(vmdk).size / MiB).toFixed(0)} MiB`,
    );
    for (const c of cases) {
      const url = srv.url(srv.put(c.name.replace(/\W+/g, '-'), { path: c.file }));
      const svcRuns: ServiceRun[] = [];
      const bareRuns: { seconds: number; cpu: number; durable: number; mode: string }[] = [];
      const fetchRuns: { seconds: number; download: number }[] = [];
      for (let r = 0; r < RUNS; r++) {
        const s = await viaService(c, url);
        svcRuns.push(s);
        console.log(
          `  ${c.name} round ${r + 1}: service ${s.seconds.toFixed(1)} s, ${s.cpu.toFixed(1)} CPU s (with its qemu-img)${s.ok ? '' : ` FAILED (${s.why})`}, RSS +${(s.rssGrowth / MiB).toFixed(1)} MiB; ${s.phases}; load ${load()}`,
        );
        for (const direct of [false, true]) {
          const b = { ...(await bare(c, dir, direct)), mode: direct ? '-t none' : 'page cache' };
          bareRuns.push(b);
          console.log(
            `  ${c.name} round ${r + 1}: bare qemu-img convert (${b.mode}) ${b.seconds.toFixed(1)} s, ${b.cpu.toFixed(1)} CPU s; ${b.durable.toFixed(1)} s with its fdatasync; load ${load()}`,
          );
        }
        const f = await curlThenConvert(c, url, dir);
        fetchRuns.push(f);
        console.log(
          `  ${c.name} round ${r + 1}: curl -o + qemu-img convert -t none + fdatasync ${f.seconds.toFixed(1)} s (curl ${f.download.toFixed(1)} s); load ${load()}`,
        );
      }
      const bestSvc = Math.min(...svcRuns.filter((s) => s.ok).map((s) => s.seconds));
      // the reference is the fastest bare conversion of any round, whichever cache mode won
      const best = bareRuns.reduce((x, y) => (y.seconds < x.seconds ? y : x));
      const bestDurable = Math.min(...bareRuns.map((b) => b.durable));
      const bestFetch = Math.min(...fetchRuns.map((f) => f.seconds));
      const svcCpu = Math.min(...svcRuns.filter((s) => s.ok).map((s) => s.cpu));
      const bareCpu = Math.min(...bareRuns.map((b) => b.cpu));
      const svcRate = mbps(SIZE, bestSvc);
      const bareRate = mbps(SIZE, best.seconds);
      const rss = Math.max(...svcRuns.map((s) => s.rssGrowth));
      console.log(
        `${c.name}: service ${svcRate.toFixed(1)} MB/s (URL to READY), bare qemu-img convert of the local file ${bareRate.toFixed(1)} MB/s (${best.mode}), ratio ${(svcRate / bareRate).toFixed(2)} (goal >= 0.8); ` +
          `peak RSS growth ${(rss / MiB).toFixed(1)} MiB (goal < 128 MiB); load average ${load()}`,
      );
      console.log(
        `${c.name}: against bare qemu-img + fdatasync ${mbps(SIZE, bestDurable).toFixed(1)} MB/s: ratio ${(svcRate / mbps(SIZE, bestDurable)).toFixed(2)}; ` +
          `against curl -o + qemu-img convert + fdatasync ${mbps(SIZE, bestFetch).toFixed(1)} MB/s: ratio ${(svcRate / mbps(SIZE, bestFetch)).toFixed(2)}; ` +
          `CPU: service ${svcCpu.toFixed(1)} s, bare ${bareCpu.toFixed(1)} s, ratio bare/service ${(bareCpu / svcCpu).toFixed(2)} (holds under load)`,
      );
    }
    console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
