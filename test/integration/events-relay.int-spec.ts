import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../../src/access/jwt';
import { Role } from '../../src/access/principal';
import { CatalogRepository } from '../../src/catalog/catalog.repository';
import { CatalogService } from '../../src/catalog/catalog.service';
import { ImagePhase } from '../../src/catalog/image.enums';
import { ALL_EVENT_TYPES } from '../../src/events/event-catalogue';
import { EventRelay } from '../../src/events/event-relay';
import { EventsRepository } from '../../src/events/events.repository';
import { EventsService } from '../../src/events/events.service';
import { MetricsService } from '../../src/observability/metrics.service';
import { TestConsumer, TEST_AMQP_URL } from '../support/amqp';
import { Caller, SHAPES, Shape, startApp, SUPER, TEST_SECRET, TestApp } from '../support/app';
import { iso, qcow2, rawBytes } from '../support/disk-images';
import { createImage, createZone } from '../support/fixtures';
import { createTestDatabase, dropTestDatabase, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../support/mariadb';
import { ServiceProcess, startServiceProcess } from '../support/service-process';
import { ensureBuilt } from '../support/build';

/**
 * The relay against the real RabbitMQ on this machine: every event type arrives on the topic exchange with
 * routing key = type, message id = event id, persistent, body = the outbox event, after the HTTP call that
 * causes it; a rolled-back change publishes nothing; kill -9 after commit and before publish, then a restart:
 * the event arrives, once.
 */

type Json = Record<string, any>;
const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
let seq = 0;
const newUser = (): Caller => ({ sub: `relay-user-${++seq}`, dept: `relay-dept-${seq}-${randomUUID().slice(0, 4)}`, role: Role.User });

/** Makes every event type happen through the API; returns the ids of the images involved. */
async function everyEventType(t: TestApp, zoneId: string): Promise<void> {
  const u = newUser();
  const admin: Caller = { sub: `relay-admin-${seq}`, dept: u.dept, role: Role.Admin };
  const as = (c: Caller) => t.auth(c);
  const ok = (status: number, want: number) => expect(status).toBe(want);
  const put = (id: string, body: Buffer) =>
    t.http().put(`/images/${id}/file`).set('Authorization', as(u)).set('Content-Type', 'application/octet-stream').send(body);
  ok(
    (
      await t
        .http()
        .patch(`/quotas/${u.dept}`)
        .set('Authorization', as(SUPER))
        .send({ limits: { IMAGE_COUNT: 3 } })
    ).status,
    200,
  ); // quota.limit_changed
  const img = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' } }); // image.created
  ok((await t.http().patch(`/images/${img.id}`).set('Authorization', as(u)).send({ name: 'relayed', scope: 'PUBLIC' })).status, 200); // updated, scope_changed
  ok((await put(img.id, qcow2(128 * 1024))).status, 200); // import.started, activated
  ok((await t.http().post(`/images/${img.id}/disable`).set('Authorization', as(admin)).send({})).status, 200); // disabled
  ok((await t.http().post(`/images/${img.id}/enable`).set('Authorization', as(admin)).send({})).status, 200); // enabled
  const isoImg = await createImage(t, u, zoneId, { kind: 'ISO', format: undefined, isoUsage: 'TOOL', source: { type: 'UPLOAD' } });
  ok((await put(isoImg.id, iso())).status, 200);
  const owner = { userId: u.sub, departmentId: u.dept };
  ok((await t.http().put('/vms/relay-vm-1/origin').set('Authorization', as(COMPUTE)).send({ imageId: img.id, vmName: 'r1', owner, zoneId })).status, 201); // vm.linked
  ok((await t.http().put(`/vms/relay-vm-1/iso-mounts/${isoImg.id}`).set('Authorization', as(COMPUTE)).send({ vmName: 'r1', owner, zoneId })).status, 201); // iso.mounted
  ok((await t.http().delete(`/vms/relay-vm-1/iso-mounts/${isoImg.id}`).set('Authorization', as(COMPUTE))).status, 204); // iso.unmounted
  ok((await t.http().delete('/vms/relay-vm-1').set('Authorization', as(COMPUTE))).status, 204); // vm.unlinked
  ok((await t.http().delete(`/images/${img.id}`).query({ confirm: true }).set('Authorization', as(u))).status, 204); // image.deleted
  const bad = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' } });
  ok((await put(bad.id, rawBytes(64 * 1024))).status, 422); // import.failed
  const inflight = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' }, expectedSizeBytes: 1000 });
  ok(
    (
      await t
        .http()
        .post('/images')
        .set('Authorization', as(u))
        .send({ kind: 'IMAGE', name: 'over', osCategory: 'CENTOS', format: 'qcow2', zoneId, source: { type: 'UPLOAD' } })
    ).status,
    409,
  ); // quota.refused
  // progress: the upload path of a test file is too quick to report; drive the import the way a download does
  const catalog = t.app.get(CatalogService);
  await catalog.transition(inflight.id, ImagePhase.Importing, { bytesDone: 0, bytesTotal: 1000, bytesPerSecond: 0 });
  expect(await catalog.recordProgress(inflight.id, { bytesDone: 500, bytesPerSecond: 10 })).toBe(true); // import.progressed
}

const allEvents = async (t: TestApp): Promise<Json[]> => {
  const out: Json[] = [];
  for (let after = 0; ;) {
    const res = await t.http().get('/events').query({ after, limit: 500 }).set('Authorization', t.auth(SUPER));
    if (!res.body.items.length) return out;
    out.push(...res.body.items);
    after = res.body.next;
  }
};

describe.each(SHAPES)('events relay to RabbitMQ (%s)', (shape: Shape) => {
  let t: TestApp;
  let zoneId: string;
  let consumer: TestConsumer;
  const exchange = `hcm.test.events.${shape}.${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    // the consumer's queue is bound before anything is published (a topic exchange drops what no queue takes)
    consumer = await new TestConsumer(TEST_AMQP_URL, exchange).start('#');
    t = await startApp(shape, `relay-${shape}`, {
      EVENTS_AMQP_URL: TEST_AMQP_URL,
      EVENTS_EXCHANGE: exchange,
      EVENTS_RELAY_INTERVAL_MS: '20',
      QUOTA_SWEEP_INTERVAL_SECONDS: '0',
    });
    zoneId = await createZone(t);
  });
  afterAll(async () => {
    await t?.close();
    await consumer?.close({ deleteExchange: true });
  });

  it('publishes every event type with its payload: routing key = type, message id = event id, persistent, in order per image', async () => {
    await everyEventType(t, zoneId);
    const outbox = await allEvents(t);
    expect(new Set(outbox.map((e) => e.type))).toEqual(new Set(ALL_EVENT_TYPES));
    await consumer.until((r) => outbox.every((e) => r.some((m) => m.messageId === e.id)));
    for (const e of outbox) {
      const m = consumer.received.find((x) => x.messageId === e.id)!;
      expect(m).toEqual({ routingKey: e.type, messageId: e.id, deliveryMode: 2, contentType: 'application/json', body: e, arrivedAt: expect.any(Number) });
    }
    const byImage = new Map<string, number[]>();
    for (const m of consumer.received) if (m.body.imageId) byImage.set(m.body.imageId, [...(byImage.get(m.body.imageId) ?? []), m.body.sequence]);
    for (const seqs of byImage.values()) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // the broker delivers before the relay has marked the batch published: wait for that, then read the metrics
    const repo = t.app.get(EventsRepository);
    while ((await repo.backlog()) > 0) await new Promise((r) => setTimeout(r, 20));
    const metrics = await t.app.get(MetricsService).render();
    expect(metrics).toMatch(/^hcm_events_outbox_backlog 0$/m);
    expect(Number(/^hcm_events_publish_latency_seconds_count (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(outbox.length);
  });

  it('a change that rolls back publishes nothing', async () => {
    const u = newUser();
    const img = await createImage(t, u, zoneId);
    const events = t.app.get(EventsService);
    const visibility = { scope: img.scope, ownerId: u.sub, departmentId: u.dept };
    await expect(
      t.app.get(CatalogRepository).update(img.id, { name: 'rolled back' }, undefined, async (m) => {
        await events.record(m, { type: 'image.updated', imageId: img.id, visibility, payload: { fields: ['name'], values: { name: 'rolled back' } } });
        throw new Error('the change failed after its event was written');
      }),
    ).rejects.toThrow('the change failed');
    expect((await t.http().patch(`/images/${img.id}`).set('Authorization', t.auth(u)).send({ name: 'sentinel' })).status).toBe(200);
    await consumer.until((r) => r.some((m) => m.body.imageId === img.id && m.body.payload?.values?.name === 'sentinel'));
    const mine = consumer.received.filter((m) => m.body.imageId === img.id);
    expect(mine.map((m) => [m.routingKey, m.body.sequence])).toEqual([
      ['image.created', 1],
      ['image.updated', 2],
    ]);
    expect(consumer.received.some((m) => m.body.payload?.values?.name === 'rolled back')).toBe(false);
  });
});

describe.each(SHAPES)('two replicas, one relay at a time (%s)', (shape: Shape) => {
  it('every event arrives once from whichever replica holds the lease, in order per image; pruning keeps what is unpublished', async () => {
    const exchange = `hcm.test.replicas.${shape}.${randomUUID().slice(0, 8)}`;
    const consumer = await new TestConsumer(TEST_AMQP_URL, exchange).start('#');
    const env = {
      EVENTS_AMQP_URL: TEST_AMQP_URL,
      EVENTS_EXCHANGE: exchange,
      EVENTS_RELAY_INTERVAL_MS: '20',
      QUOTA_SWEEP_INTERVAL_SECONDS: '0',
      EVENTS_PRUNE_INTERVAL_SECONDS: '0',
    };
    const a = await startApp(shape, `relay-a-${shape}`, env);
    let b: TestApp | undefined;
    try {
      b = await startApp(shape, `relay-b-${shape}`, env, { shareDatabaseWith: a });
      const zoneId = await createZone(a);
      const u = newUser();
      const replicas = [a, b];
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await createImage(replicas[i % 2], u, zoneId)).id);
      for (let round = 0; round < 4; round++) {
        await Promise.all(
          ids.map((id, i) =>
            replicas[(i + round) % 2]
              .http()
              .patch(`/images/${id}`)
              .set('Authorization', a.auth(u))
              .send({ name: `r${round}` })
              .expect(200),
          ),
        );
      }
      await consumer.until((r) => ids.every((id) => r.filter((m) => m.body.imageId === id).length >= 5));
      for (const id of ids) expect(consumer.received.filter((m) => m.body.imageId === id).map((m) => m.body.sequence)).toEqual([1, 2, 3, 4, 5]);
      // retention: published events older than it go, unpublished ones stay whatever their age
      const img = await createImage(b, u, zoneId);
      const repo = a.app.get(EventsRepository);
      while ((await repo.backlog()) > 0) await new Promise((r) => setTimeout(r, 20));
      const events = b.app.get(EventsService);
      const before = await allEvents(a);
      const relayB = b.app.get(EventRelay);
      // stop both relays so the next event stays unpublished, then prune "a year later"
      await a.app.get(EventRelay).onModuleDestroy();
      await relayB.onModuleDestroy();
      await b.app.get(CatalogRepository).update(img.id, { name: 'unpublished' }, undefined, (m) =>
        events.record(m, {
          type: 'image.updated',
          imageId: img.id,
          visibility: { scope: img.scope, ownerId: u.sub, departmentId: u.dept },
          payload: { fields: ['name'], values: { name: 'unpublished' } },
        }),
      );
      const pruned = await relayB.prune(Date.now() + 366 * 24 * 3600_000);
      const after = await allEvents(a);
      expect(pruned).toBeGreaterThanOrEqual(before.length);
      expect(after.map((e) => e.payload?.values?.name)).toEqual(['unpublished']);
    } finally {
      await b?.close();
      await a.close();
      await consumer.close({ deleteExchange: true });
    }
  }, 120_000);
});

describe('an event committed before a kill -9 is published after the restart, once', () => {
  const children: ServiceProcess[] = [];
  beforeAll(() => {
    ensureBuilt();
  }, 200_000);
  afterEach(async () => {
    for (const c of children.splice(0)) await c.kill9();
  });

  it.each(SHAPES)('%s', async (shape) => {
    const exchange = `hcm.test.crash.${shape}.${randomUUID().slice(0, 8)}`;
    const consumer = await new TestConsumer(TEST_AMQP_URL, exchange).start('image.#');
    const dataDir = mkdtempSync(join(tmpdir(), `hcm-relay-crash-${shape}-`));
    const db = shape === 'mariadb' ? await createTestDatabase('relaycrash') : undefined;
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      AUTH_JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'warn',
      IMPORT_CONCURRENCY: '0',
      RATE_LIMIT_CREATE_PER_MIN: '0',
      EVENTS_EXCHANGE: exchange,
      EVENTS_RELAY_INTERVAL_MS: '20',
      ...(db
        ? { DB_TYPE: 'mariadb', DB_HOST: TEST_DB_HOST, DB_PORT: String(TEST_DB_PORT), DB_USER: TEST_DB_USER, DB_PASSWORD: TEST_DB_PASSWORD, DB_NAME: db }
        : { DB_TYPE: 'sqlite', DB_PATH: join(dataDir, 'db.sqlite') }),
    };
    const auth = (c: Caller) => `Bearer ${signToken({ sub: c.sub, dept: c.dept, role: c.role, name: c.sub }, TEST_SECRET)}`;
    const call = (s: ServiceProcess, method: string, path: string, as: Caller, body?: Json) =>
      fetch(s.url(path), { method, headers: { authorization: auth(as), 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    try {
      // the first process cannot reach a broker (nothing listens on port 1): what it commits stays unpublished
      const first = await startServiceProcess({ ...env, EVENTS_AMQP_URL: 'amqp://guest:guest@127.0.0.1:1' }, 'relay #1');
      children.push(first);
      const zone = (await (await call(first, 'POST', '/zones', SUPER, { name: 'z', hypervisor: 'KVM' })).json()) as Json;
      const u = newUser();
      const res = await call(first, 'POST', '/images', u, {
        kind: 'IMAGE',
        name: 'before-kill',
        osCategory: 'CENTOS',
        format: 'qcow2',
        zoneId: zone.id,
        source: { type: 'UPLOAD' },
      });
      expect(res.status).toBe(201);
      const img = (await res.json()) as Json;
      const committed = (await (await call(first, 'GET', `/events?imageId=${img.id}`, SUPER)).json()) as Json;
      expect(committed.items.map((e: Json) => e.type)).toEqual(['image.created']);
      await first.kill9();
      expect(consumer.received).toEqual([]);

      const second = await startServiceProcess({ ...env, EVENTS_AMQP_URL: TEST_AMQP_URL }, 'relay #2');
      children.push(second);
      await consumer.until((r) => r.some((m) => m.messageId === committed.items[0].id));
      // a later event proves the relay went past it: by then a duplicate would have arrived too
      expect((await call(second, 'PATCH', `/images/${img.id}`, u, { name: 'after-restart' })).status).toBe(200);
      await consumer.until((r) => r.some((m) => m.body.imageId === img.id && m.routingKey === 'image.updated'));
      expect(consumer.received.filter((m) => m.messageId === committed.items[0].id)).toHaveLength(1);
      expect(consumer.received.find((m) => m.messageId === committed.items[0].id)!.body).toEqual(committed.items[0]);
      await second.stop();
    } finally {
      await consumer.close({ deleteExchange: true });
      if (db) await dropTestDatabase(db);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
