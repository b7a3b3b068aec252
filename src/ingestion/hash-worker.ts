import { Worker } from 'node:worker_threads';

/**
 * sha256 (and md5) computed in a worker thread, so that the main thread's socket reads, format check and disk
 * writes run while the previous MiB is being hashed. Profiles of an import showed sha256 on the main thread at
 * 32-38 % of the wall time, alternating with the writes instead of overlapping them.
 *
 * One worker per process, shared by every hash in flight (lazily started, not keeping the process alive when no
 * hash is open). Chunks are posted as views of SharedArrayBuffers (the pooled slots of ../storage/chunk-pool.ts:
 * the worker reads the very bytes the store writes, nothing copied); any other chunk is copied once into a
 * transferred buffer. Messages on one port keep their order, so a digest comes after every update before it.
 */

/** The worker's code (plain JavaScript evaluated by the worker: no file to find in src/ or dist/). */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    open.set(m.id, { sha256: createHash('sha256'), md5: m.md5 ? createHash('md5') : undefined });
  } else if (m.op === 'update') {
    const h = open.get(m.id);
    if (h) {
      const view = new Uint8Array(m.buf, m.off, m.len);
      h.sha256.update(view);
      if (h.md5) h.md5.update(view);
    }
    parentPort.postMessage({ op: 'updated', id: m.id });
  } else if (m.op === 'digest') {
    const h = open.get(m.id);
    open.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, sha256: h && h.sha256.digest('hex'), md5: h && h.md5 ? h.md5.digest('hex') : undefined });
  } else if (m.op === 'close') {
    open.delete(m.id);
  }
});
`;

export interface WorkerDigests {
  sha256: string;
  md5?: string;
}

interface Job {
  /** an update was hashed (in order) */
  updated: () => void;
  digest?: { resolve: (d: WorkerDigests) => void; reject: (e: Error) => void };
  failed: (e: Error) => void;
}

type Reply = { op: 'updated'; id: number } | { op: 'digest'; id: number; sha256?: string; md5?: string };

class HashThread {
  private worker?: Worker;
  private nextId = 1;
  private readonly jobs = new Map<number, Job>();

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, name: 'hcm-hash' });
    w.on('message', (m: Reply) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      if (m.op === 'updated') return job.updated();
      this.jobs.delete(m.id);
      this.idle();
      if (m.sha256) job.digest?.resolve({ sha256: m.sha256, md5: m.md5 });
      else job.digest?.reject(new Error('the hashing worker lost this hash'));
    });
    const lost = (e: Error) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      const jobs = [...this.jobs.values()];
      this.jobs.clear();
      for (const j of jobs) {
        j.failed(e);
        j.digest?.reject(e);
      }
    };
    w.on('error', lost);
    w.on('exit', (code) => lost(new Error(`the hashing worker exited (${code})`)));
    this.worker = w;
    return w;
  }

  /** While no hash is open the worker does not keep the process alive. */
  private idle(): void {
    if (this.jobs.size === 0) this.worker?.unref();
  }

  open(md5: boolean, updated: () => void, failed: (e: Error) => void): number {
    const w = this.start();
    const id = this.nextId++;
    this.jobs.set(id, { updated, failed });
    w.ref();
    w.postMessage({ op: 'open', id, md5 });
    return id;
  }

  /** Hashes `chunk` next. A view of a SharedArrayBuffer is shared (the caller keeps it intact until `updated`); anything else is copied. */
  update(id: number, chunk: Uint8Array): void {
    const w = this.worker;
    if (!w || !this.jobs.has(id)) throw new Error('the hash is not open');
    if (chunk.buffer instanceof SharedArrayBuffer) {
      w.postMessage({ op: 'update', id, buf: chunk.buffer, off: chunk.byteOffset, len: chunk.length });
    } else {
      const copy = new Uint8Array(chunk);
      w.postMessage({ op: 'update', id, buf: copy.buffer, off: 0, len: copy.length }, [copy.buffer]);
    }
  }

  digest(id: number): Promise<WorkerDigests> {
    const job = this.jobs.get(id);
    if (!job || !this.worker) return Promise.reject(new Error('the hash is not open'));
    return new Promise((resolve, reject) => {
      job.digest = { resolve, reject };
      this.worker!.postMessage({ op: 'digest', id });
    });
  }

  /**
   * Starts the worker and hashes `chunk` once, so that the first import does not pay the thread's start-up and
   * its cold code. Resolves when done; the worker then waits unreferenced, as after any hash.
   */
  async warm(chunk: Uint8Array): Promise<void> {
    const id = this.open(
      false,
      () => undefined,
      () => undefined,
    );
    this.update(id, chunk);
    await this.digest(id);
  }

  /**
   * Ends the worker when no hash is open (an application shutting down); the next hash starts a new one. With a
   * hash open it is left running: another application of the same process (tests) is using it.
   */
  async stop(): Promise<void> {
    const w = this.worker;
    if (!w || this.jobs.size > 0) return;
    this.worker = undefined;
    await w.terminate();
  }

  /** Forgets a hash that will not be finished (its stream failed). */
  close(id: number): void {
    if (!this.jobs.delete(id)) return;
    this.worker?.postMessage({ op: 'close', id });
    this.idle();
  }
}

/** The process's hashing thread. */
export const hashThread = new HashThread();
