import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { ChannelModel, ConfirmChannel, connect } from 'amqplib';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { EventEnvelope } from './event-catalogue';
import { EventsRepository, RelayConnection } from './events.repository';

const FIRST_BACKOFF_MS = 200;
/** The lease is renewed before a batch once this long has passed since the last renewal. */
const LEASE_RENEW_MS = 1000;
/** While the backlog lasts a batch may grow to this many times EVENTS_RELAY_BATCH. */
const MAX_BATCH_FACTOR = 8;
/** Woken by a commit, the relay reads this much later, so that commits arriving together share a batch. */
const WAKE_DELAY_MS = 5;

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
  private woken = false;
  private waiting: (() => void) | undefined;

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
    this.wake();
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

  /**
   * The loop (issue 14: not starved under load). On a connection of its own (not queued behind requests for a
   * pooled one); the lease renewed before a batch when a second has passed since the last renewal (so the
   * lease has at least EVENTS_RELAY_LEASE_SECONDS - 1 s left whenever a batch starts); batches read by primary
   * key from the last published position; published while the previous batch's confirms are awaited
   * (pipelined: one batch in the broker's hands while the next is read), and marked published only once
   * confirmed. A full batch goes straight on to the next, reading up to 8 x EVENTS_RELAY_BATCH while the
   * backlog lasts; when caught up it waits for a commit on this replica (woken in-process a few milliseconds
   * later, so that commits arriving together go in one batch) or EVENTS_RELAY_INTERVAL_MS (other replicas,
   * the quota's raw transactions).
   */
  private async run(): Promise<void> {
    const amqp = this.cfg.events.amqp!;
    const unsubscribe = this.repo.onCommitted(() => this.wake());
    let backoff = FIRST_BACKOFF_MS;
    let runner: RelayConnection | undefined;
    let renewedAt = 0;
    let cursor = 0;
    let limit = amqp.batch;
    let inFlight: Promise<void> | undefined;
    try {
      while (!this.stop.signal.aborted) {
        try {
          runner ??= this.repo.relayConnection();
          const now = Date.now();
          if (now - renewedAt >= LEASE_RENEW_MS) {
            if (!(await this.repo.acquireLease(this.holder, now, now + amqp.leaseMs, runner))) {
              renewedAt = 0;
              cursor = 0;
              await inFlight?.catch(() => undefined);
              inFlight = undefined;
              await this.sleep(Math.min(amqp.leaseMs / 4, 1000));
              continue;
            }
            renewedAt = now;
          }
          this.woken = false;
          const batch = await this.repo.unpublished(limit, cursor, runner);
          if (batch.length) {
            // published in order on one channel, awaited (flow control included), so batches never interleave
            const ch = await this.ensureChannel();
            await this.send(ch, batch);
            const confirmed = this.confirm(ch, batch, runner);
            // the previous batch's confirms (and mark) before this one's: a failure stops here, in order
            const previous = inFlight;
            inFlight = confirmed;
            confirmed.catch(() => undefined);
            await previous;
            cursor = batch[batch.length - 1].position;
            backoff = FIRST_BACKOFF_MS;
          }
          if (batch.length >= limit) {
            limit = Math.min(limit * 2, amqp.batch * MAX_BATCH_FACTOR);
            continue;
          }
          limit = amqp.batch;
          // caught up: let the last batch be confirmed, then wait for more
          if (inFlight) {
            const last = inFlight;
            inFlight = undefined;
            await last;
          }
          if (!this.woken) await this.idle(amqp.intervalMs);
          if (this.woken) await this.sleep(WAKE_DELAY_MS);
        } catch (e) {
          inFlight = undefined;
          cursor = 0;
          renewedAt = 0;
          if (this.stop.signal.aborted) break;
          this.metrics.eventsPublishFailures.inc();
          this.log.warn(`Publishing events failed (${(e as Error)?.message ?? String(e)}); trying again in ${backoff} ms`);
          await this.disconnect();
          if (runner) {
            const r = runner;
            runner = undefined;
            await r.release().catch(() => undefined);
          }
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, amqp.reconnectMaxMs);
        }
      }
      await inFlight?.catch(() => undefined);
    } finally {
      unsubscribe();
      await runner?.release().catch(() => undefined);
    }
  }

  /** Publishes the batch (persistent messages on the confirm channel). */
  private async send(ch: ConfirmChannel, batch: EventEnvelope[]): Promise<void> {
    const exchange = this.cfg.events.amqp!.exchange;
    for (const e of batch) {
      const m = toMessage(e);
      if (!ch.publish(exchange, m.routingKey, m.body, m.options)) await new Promise<void>((resolve) => ch.once('drain', () => resolve()));
    }
  }

  /** Resolves once the broker confirmed the batch (and everything published before it) and it is marked published. */
  private async confirm(ch: ConfirmChannel, batch: EventEnvelope[], runner: RelayConnection): Promise<void> {
    await ch.waitForConfirms();
    const at = Date.now();
    // counted when the broker confirmed (a publish that happened, even if marking it fails and it goes again),
    // and before the mark, so whoever sees the backlog empty also sees these metrics
    const byType = new Map<string, number>();
    for (const e of batch) {
      byType.set(e.type, (byType.get(e.type) ?? 0) + 1);
      this.metrics.eventsPublishLatency.observe(Math.max(0, at - e.time) / 1000);
    }
    for (const [type, n] of byType) this.metrics.eventsPublished.inc({ type }, n);
    await this.repo.markPublished(batch[0].position, batch[batch.length - 1].position, at, runner);
  }

  /** Called after a commit that wrote events: ends an idle wait. */
  private wake(): void {
    this.woken = true;
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  /** Waits up to `ms`, less when woken. */
  private idle(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        if (self.waiting === done) self.waiting = undefined;
        resolve();
      }
      this.waiting = done;
      if (this.stop.signal.aborted) done();
    });
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
