import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { Role } from '../../src/access/principal';
import { BullMqQueue } from '../../src/jobs/bullmq-queue';
import { JobQueue } from '../../src/jobs/job-queue';
import { apiClient, reply } from '../support/api-client';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { rawBytes } from '../support/disk-images';
import { createZone } from '../support/fixtures';

/**
 * While a URL import waits between attempts, the record says why it is not ACTIVE yet: which attempt failed, why,
 * and when the next one starts. Checked with a real HTTP server that fails the first requests and, each time the
 * service comes back for the next attempt, reads the record first (the moment right before the next attempt),
 * while a poller reads it over HTTP the whole time. Both queue drivers: in-process and BullMQ on Redis.
 */

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const USER: Caller = { sub: 'retry-user', dept: 'retry-dept', role: Role.User };
const BYTES = rawBytes(256 * 1024);
type Json = Record<string, any>;

/** Answers 503 to the first `fails` requests, then the file; calls `onRequest` (awaited) before answering each. */
class FlakyServer {
  readonly server: Server;
  port = 0;
  requests = 0;
  constructor(
    private readonly fails: number,
    private readonly onRequest: (n: number) => Promise<void>,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }
  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  private async handle(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    const n = ++this.requests;
    try {
      await this.onRequest(n);
    } catch {
      // the test records the failure itself; the answer goes out regardless
    }
    if (n <= this.fails) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '0' });
      res.end('busy');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BYTES.length });
    res.end(BYTES);
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const DRIVERS = ['memory', 'redis'] as const;

describe.each(SHAPES.flatMap((shape) => DRIVERS.map((driver) => [shape, driver] as const)))(
  'the reason of an import between attempts (%s, queue %s)',
  (shape, driver) => {
    let t: TestApp;
    let zoneId: string;
    const prefix = `hcm-test-retry-${process.pid}-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      t = await startApp(shape, `retry${driver}`, {
        URL_ALLOW_CIDRS: '127.0.0.0/8',
        IMPORT_CONCURRENCY: '1',
        JOB_ATTEMPTS: '3',
        JOB_BACKOFF_MS: '400',
        URL_MAX_ATTEMPTS: '2',
        URL_RETRY_BASE_DELAY_MS: '300',
        INGEST_SWEEP_INTERVAL_SECONDS: '0',
        ...(driver === 'redis' ? { QUEUE_DRIVER: 'redis', REDIS_URL, QUEUE_PREFIX: prefix } : { QUEUE_DRIVER: 'memory' }),
      });
      zoneId = await createZone(t);
    });
    afterAll(async () => {
      if (!t) return;
      const q = t.app.get(JobQueue);
      await t.close();
      if (q instanceof BullMqQueue) await q.obliterate().catch(() => undefined);
    });

    const read = async (id: string): Promise<Json> => {
      const res = await reply((await apiClient(t, SUPER)).GET('/images/{id}', { params: { path: { id } } }));
      expect(res.status).toBe(200);
      return res.body;
    };

    it('says which attempt failed, why, and when the next starts, at every moment until ACTIVE', async () => {
      let imageId = '';
      /** the record as the service came back for request n (n >= 2): what a person saw right before that attempt */
      const before = new Map<number, Json>();
      const srv = await new FlakyServer(3, async (n) => {
        if (n >= 2) before.set(n, await read(imageId));
      }).start();
      try {
        const created = await reply(
          (await apiClient(t, USER)).POST('/images', {
            body: {
              kind: 'IMAGE',
              name: 'flaky',
              osCategory: 'CENTOS',
              format: 'raw',
              zoneId,
              source: { type: 'URL', url: `http://127.0.0.1:${srv.port}/disk.raw` },
            },
          }),
        );
        expect(created.status).toBe(201);
        imageId = created.body.id;

        // read the record over HTTP the whole time, until it is ACTIVE or FAILED
        const seen: Array<{ phase: string; statusReason: string | null; requests: number }> = [];
        for (;;) {
          const requests = srv.requests; // requests the server had received before this read
          const img = await read(imageId);
          seen.push({ phase: img.phase, statusReason: img.statusReason, requests });
          if (img.status === 'ACTIVE' || img.phase === 'FAILED') break;
          await new Promise((r) => setImmediate(r));
        }
        expect(seen[seen.length - 1].phase).toBe('READY');
        expect(srv.requests).toBe(4);

        // request 1 (import attempt 1) failed; the download retries within the attempt
        expect(before.get(2)).toMatchObject({ phase: 'QUEUED', status: 'INACTIVE' });
        expect(before.get(2)!.statusReason).toMatch(/^Download attempt 1 of 2 failed: .*503.*; retrying in [0-9.]+ s \(import attempt 1 of 3\)$/);
        // request 2 failed too: import attempt 1 is over; the queue retries after its backoff (400 ms)
        expect(before.get(3)).toMatchObject({ phase: 'QUEUED', status: 'INACTIVE' });
        expect(before.get(3)!.statusReason).toMatch(/^Attempt 1 of 3 failed: .*503.*; retrying in 0\.4 s$/);
        // request 3 (import attempt 2) failed: the download retries again
        expect(before.get(4)!.statusReason).toMatch(/^Download attempt 1 of 2 failed: .*503.*; retrying in [0-9.]+ s \(import attempt 2 of 3\)$/);

        // and at every read in between: once the service had come back after a failure (request 2 arrived), a
        // QUEUED record always said why, across the end of import attempt 1 and the queue's backoff
        const afterFirstFailure = seen.filter((s) => s.requests >= 2 && s.phase === 'QUEUED');
        expect(afterFirstFailure.length).toBeGreaterThan(0);
        for (const s of afterFirstFailure) expect(s.statusReason).toMatch(/attempt \d of \d failed: .+; retrying in [0-9.]+ s/i);
        // ACTIVE: no reason left over
        expect(seen[seen.length - 1].statusReason).toBeNull();
      } finally {
        await srv.close();
      }
    });
  },
);
