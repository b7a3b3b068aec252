import { randomUUID } from 'node:crypto';
import { Role } from '../../src/access/principal';
import { EventsRepository } from '../../src/events/events.repository';
import { MetricsService } from '../../src/observability/metrics.service';
import { TestConsumer } from '../support/amqp';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { qcow2 } from '../support/disk-images';
import { createImage, createZone } from '../support/fixtures';
import { PrivateBroker, startPrivateBroker } from '../support/rabbitmq';

/**
 * RabbitMQ stopped for ~30 s during a burst of imports (a private broker on its own port; the shared one is
 * never touched): once it is back, every event of the outbox arrives on a durable queue, in order per image.
 */

type Json = Record<string, any>;
const OUTAGE_MS = 30_000;
const IMAGES_BEFORE = 15;
const IMAGES_DURING = 15;

describe('events survive a broker outage', () => {
  let broker: PrivateBroker;
  beforeAll(async () => {
    broker = await startPrivateBroker();
  }, 120_000);
  afterAll(async () => {
    await broker?.close();
  }, 120_000);

  it.each(SHAPES)(
    '%s',
    async (shape) => {
      const exchange = `hcm.test.outage.${randomUUID().slice(0, 8)}`;
      const queue = `outage-${shape}-${randomUUID().slice(0, 8)}`;
      // a durable queue bound before anything is published; its persistent messages survive the restart
      await (await new TestConsumer(broker.url, exchange, queue).start('image.#', { durable: true })).close();
      let t: TestApp | undefined;
      try {
        t = await startApp(shape, `outage-${shape}`, {
          EVENTS_AMQP_URL: broker.url,
          EVENTS_EXCHANGE: exchange,
          EVENTS_RELAY_INTERVAL_MS: '20',
          EVENTS_RECONNECT_MAX_MS: '2000',
          QUOTA_SWEEP_INTERVAL_SECONDS: '0',
        });
        const app = t;
        const zoneId = await createZone(app);
        const u: Caller = { sub: `outage-${shape}`, dept: `outage-${randomUUID().slice(0, 6)}`, role: Role.User };
        const importOne = async (n: number) => {
          const img = await createImage(app, u, zoneId, { source: { type: 'UPLOAD' } });
          const res = await app
            .http()
            .put(`/images/${img.id}/file`)
            .set('Authorization', app.auth(u))
            .set('Content-Type', 'application/octet-stream')
            .send(qcow2(64 * 1024 + n, n));
          expect(res.status).toBe(200);
          expect(
            (
              await app
                .http()
                .patch(`/images/${img.id}`)
                .set('Authorization', app.auth(u))
                .send({ description: `import ${n}` })
            ).status,
          ).toBe(200);
        };
        const burst = async (from: number, count: number) => {
          for (let i = 0; i < count; i += 3) await Promise.all([0, 1, 2].filter((k) => i + k < count).map((k) => importOne(from + i + k)));
        };
        const first = burst(0, IMAGES_BEFORE);
        await broker.stop(); // while the first half is under way
        await first;
        await burst(IMAGES_BEFORE, IMAGES_DURING);
        const repo = app.app.get(EventsRepository);
        expect(await repo.backlog()).toBeGreaterThan(0);
        await new Promise((r) => setTimeout(r, OUTAGE_MS)); // the outage lasts; the relay keeps retrying
        const failures = /^hcm_events_publish_failures_total (\d+)/m.exec(await app.app.get(MetricsService).render())?.[1];
        expect(Number(failures)).toBeGreaterThan(0);
        await broker.start();

        const outbox: Json[] = [];
        for (let after = 0; ;) {
          const page = (
            await app
              .http()
              .get('/events')
              .query({ after, limit: 500, type: 'image.created,image.import.started,image.activated,image.updated' })
              .set('Authorization', app.auth(SUPER))
          ).body;
          if (!page.items.length) break;
          outbox.push(...page.items);
          after = page.next;
        }
        expect(outbox).toHaveLength((IMAGES_BEFORE + IMAGES_DURING) * 4);
        const consumer = await new TestConsumer(broker.url, exchange, queue).start('image.#', { durable: true });
        try {
          await consumer.until((r) => outbox.every((e) => r.some((m) => m.messageId === e.id)));
          // in order per image: the first delivery of each event id comes in sequence order (redeliveries of a
          // batch the broker had not confirmed may follow; consumers drop them by message id)
          const seen = new Set<string>();
          const perImage = new Map<string, number[]>();
          for (const m of consumer.received) {
            if (seen.has(m.messageId)) continue;
            seen.add(m.messageId);
            perImage.set(m.body.imageId, [...(perImage.get(m.body.imageId) ?? []), m.body.sequence]);
          }
          expect(perImage.size).toBe(IMAGES_BEFORE + IMAGES_DURING);
          // the binding also gets the throttled image.import.progressed events (one more when an import runs long
          // on a loaded machine): every image's sequence is still complete and in order, 1..n, with n >= the 4 above
          for (const seqs of perImage.values()) {
            expect(seqs.length).toBeGreaterThanOrEqual(4);
            expect(seqs).toEqual(seqs.map((_, i) => i + 1));
          }
          for (const e of outbox) expect(consumer.received.find((m) => m.messageId === e.id)!.body).toEqual(e);
        } finally {
          await consumer.close({ deleteQueue: true, deleteExchange: true });
        }
      } finally {
        await t?.close();
      }
    },
    240_000,
  );
});
