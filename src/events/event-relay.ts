import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { ChannelModel, ConfirmChannel, connect } from 'amqplib';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { EventEnvelope } from './event-catalogue';
import { EventsRepository } from './events.repository';

const FIRST_BACKOFF_MS = 200;

/** The AMQP message of an event: what consumers bind to and deduplicate by. */
export function toMessage(e: EventEnvelope): { routingKey: string; body: Buffer; options: Record<string, unknown> } {
  return {
    routingKey: e.type,
    body: Buffer.from(JSON.stringify(e)),
    options: {
      persistent: true,
      messageId: e.id,
      type: e.type,
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      timestamp: Math.floor(e.time / 1000),
      correlationId: e.correlationId ?? undefined,
      appId: 'hcm-image-service',
      headers: { 'x-event-version': e.version, 'x-image-id': e.imageId, 'x-sequence': e.sequence, 'x-position': e.position },
    },
  };
}

/**
 * Publishes the outbox to RabbitMQ (platform shape; off without EVENTS_AMQP_URL).
 *
 * Every replica runs a relay; the one holding the lease (event_relay_lease, renewed before every batch)
 * publishes, the others wait, so order per image holds across replicas. A batch is the oldest unpublished
 * events in position order, published to the topic exchange (routing key = type, persistent, message id =
 * event id) on a confirm channel; only once the broker confirmed all of them are they marked published. A
 * crash or a broker failure in between publishes them again: delivery is at least once, consumers drop
 * duplicates by message id (and can check `sequence` per image). Connection failures are retried with
 * doubling backoff up to EVENTS_RECONNECT_MAX_MS.
 */
@Injectable()
export class EventRelay implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('EventRelay');
  private readonly holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly stop = new AbortController();
  private conn: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private loop: Promise<void> | undefined;
  private pruner: NodeJS.Timeout | undefined;

  constructor(
    private readonly repo: EventsRepository,
    private readonly cfg: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  onApplicationBootstrap(): void {
    const amqp = this.cfg.events.amqp;
    if (amqp) {
      this.metrics.addCollector(async () => this.metrics.eventsBacklog.set(await this.repo.backlog()));
      this.log.log(`Publishing events to ${amqp.safeUrl}, exchange ${amqp.exchange}`);
      this.loop = this.run();
    }
    if (this.cfg.events.pruneIntervalMs > 0) {
      this.pruner = setInterval(() => void this.prune(), this.cfg.events.pruneIntervalMs);
      this.pruner.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.stop.abort();
    if (this.pruner) clearInterval(this.pruner);
    await this.loop;
    await this.disconnect();
    if (this.cfg.events.amqp) await this.repo.releaseLease(this.holder).catch(() => undefined);
  }

  /** Deletes events past the retention: published ones (relay on), or all old ones (no relay). */
  async prune(now = Date.now()): Promise<number> {
    let total = 0;
    try {
      for (let n = -1; n !== 0; total += n) n = await this.repo.prune(now - this.cfg.events.retentionMs, !!this.cfg.events.amqp);
    } catch (e) {
      this.log.warn(`Pruning events failed: ${(e as Error)?.message ?? String(e)}`);
    }
    return total;
  }

  private async run(): Promise<void> {
    const amqp = this.cfg.events.amqp!;
    let backoff = FIRST_BACKOFF_MS;
    while (!this.stop.signal.aborted) {
      try {
        const now = Date.now();
        if (!(await this.repo.acquireLease(this.holder, now, now + amqp.leaseMs))) {
          await this.sleep(Math.min(amqp.leaseMs / 4, 1000));
          continue;
        }
        const batch = await this.repo.unpublished(amqp.batch);
        if (!batch.length) {
          await this.sleep(amqp.intervalMs);
          continue;
        }
        await this.publish(batch);
        backoff = FIRST_BACKOFF_MS;
      } catch (e) {
        if (this.stop.signal.aborted) break;
        this.metrics.eventsPublishFailures.inc();
        this.log.warn(`Publishing events failed (${(e as Error)?.message ?? String(e)}); trying again in ${backoff} ms`);
        await this.disconnect();
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, amqp.reconnectMaxMs);
      }
    }
  }

  private async publish(batch: EventEnvelope[]): Promise<void> {
    const amqp = this.cfg.events.amqp!;
    const ch = await this.ensureChannel();
    for (const e of batch) {
      const m = toMessage(e);
      if (!ch.publish(amqp.exchange, m.routingKey, m.body, m.options)) await new Promise<void>((resolve) => ch.once('drain', () => resolve()));
    }
    await ch.waitForConfirms();
    const at = Date.now();
    // counted when the broker confirmed (a publish that happened, even if marking it fails and it goes again),
    // and before the mark, so whoever sees the backlog empty also sees these metrics
    for (const e of batch) {
      this.metrics.eventsPublished.inc({ type: e.type });
      this.metrics.eventsPublishLatency.observe(Math.max(0, at - e.time) / 1000);
    }
    await this.repo.markPublished(
      batch.map((e) => e.position),
      at,
    );
  }

  private async ensureChannel(): Promise<ConfirmChannel> {
    if (this.channel) return this.channel;
    const amqp = this.cfg.events.amqp!;
    const conn = await connect(amqp.url, { clientProperties: { connection_name: `hcm-image-service ${this.holder}` }, timeout: 10_000 });
    conn.on('error', (e: Error) => this.log.warn(`Broker connection error: ${e.message}`));
    conn.on('close', () => {
      if (this.conn === conn) {
        this.conn = undefined;
        this.channel = undefined;
      }
    });
    this.conn = conn;
    const ch = await conn.createConfirmChannel();
    ch.on('error', (e: Error) => this.log.warn(`Broker channel error: ${e.message}`));
    ch.on('close', () => {
      if (this.channel === ch) this.channel = undefined;
    });
    await ch.assertExchange(amqp.exchange, 'topic', { durable: true });
    this.channel = ch;
    this.log.log(`Connected to ${amqp.safeUrl}`);
    return ch;
  }

  private async disconnect(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    this.channel = undefined;
    await conn?.close().catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.stop.signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      const signal = this.stop.signal;
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
