import { randomUUID } from 'node:crypto';
import { ChannelModel, connect, ConsumeMessage } from 'amqplib';

/** The RabbitMQ running on this machine (guest/guest). */
export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface Received {
  routingKey: string;
  messageId: string;
  deliveryMode: number | undefined;
  contentType: string | undefined;
  body: Record<string, any>;
  /** ms since the epoch when the consumer got it */
  arrivedAt: number;
}

/**
 * A consumer as a platform service would bind one: a queue on the topic exchange with a binding key.
 * `durable` keeps the queue (and the persistent messages in it) across a broker restart.
 */
export class TestConsumer {
  readonly received: Received[] = [];
  private waiters: Array<() => void> = [];
  private conn?: ChannelModel;

  constructor(
    readonly url: string,
    readonly exchange: string,
    readonly queue = `hcm-test-${randomUUID().slice(0, 8)}`,
  ) {}

  async start(bindingKey = '#', opts: { durable?: boolean } = {}): Promise<this> {
    this.conn = await connect(this.url);
    this.conn.on('error', () => undefined);
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    await ch.assertExchange(this.exchange, 'topic', { durable: true });
    await ch.assertQueue(this.queue, opts.durable ? { durable: true } : { exclusive: true, autoDelete: true });
    await ch.bindQueue(this.queue, this.exchange, bindingKey);
    await ch.consume(this.queue, (m: ConsumeMessage | null) => {
      if (!m) return;
      this.received.push({
        routingKey: m.fields.routingKey,
        messageId: String(m.properties.messageId),
        deliveryMode: m.properties.deliveryMode as number | undefined,
        contentType: m.properties.contentType as string | undefined,
        body: JSON.parse(m.content.toString('utf8')),
        arrivedAt: Date.now(),
      });
      ch.ack(m);
      for (const w of this.waiters.splice(0)) w();
    });
    return this;
  }

  /** Waits until `cond` holds on what arrived (the test's timeout bounds it). */
  async until(cond: (r: Received[]) => boolean): Promise<void> {
    while (!cond(this.received)) await new Promise<void>((r) => this.waiters.push(r));
  }

  async close(opts: { deleteQueue?: boolean; deleteExchange?: boolean } = {}): Promise<void> {
    if (!this.conn) return;
    if (opts.deleteQueue || opts.deleteExchange) {
      const ch = await this.conn.createChannel();
      if (opts.deleteQueue) await ch.deleteQueue(this.queue).catch(() => undefined);
      if (opts.deleteExchange) await ch.deleteExchange(this.exchange).catch(() => undefined);
    }
    await this.conn.close().catch(() => undefined);
    this.conn = undefined;
  }
}
