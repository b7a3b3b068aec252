import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { EventsRepository } from './events.repository';

interface Waiter {
  beyond: number;
  wake: () => void;
}

/**
 * What the SSE streams of one replica share: ONE poll of the outbox's highest position (every
 * EVENTS_SSE_POLL_MS, only while streams wait), which wakes the streams that have read up to an older one.
 * Events written by any replica show up this way; no stream queries the outbox while nothing is new.
 */
@Injectable()
export class EventStreamHub implements OnModuleDestroy {
  private readonly log = new Logger('EventStream');
  private readonly waiters = new Set<Waiter>();
  private readonly streams = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly repo: EventsRepository,
    private readonly cfg: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  /** Registers an open stream; `end` closes it on shutdown. Returns the function to call when it closed. */
  open(end: () => void): () => void {
    this.streams.add(end);
    this.metrics.sseClients.set(this.streams.size);
    return () => {
      this.streams.delete(end);
      this.metrics.sseClients.set(this.streams.size);
    };
  }

  /** Resolves once an event past `position` is committed, or when `signal` aborts. */
  waitBeyond(position: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const w: Waiter = {
        beyond: position,
        wake: () => {
          this.waiters.delete(w);
          signal.removeEventListener('abort', w.wake);
          resolve();
        },
      };
      signal.addEventListener('abort', w.wake, { once: true });
      this.waiters.add(w);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer || !this.waiters.size) return;
    this.timer = setTimeout(() => void this.poll(), this.cfg.events.ssePollMs);
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    if (this.polling) return;
    this.polling = true;
    try {
      const last = await this.repo.lastPosition();
      for (const w of [...this.waiters]) if (last > w.beyond) w.wake();
    } catch (e) {
      this.log.warn(`Polling the outbox failed: ${(e as Error)?.message ?? String(e)}`);
    } finally {
      this.polling = false;
      this.schedule();
    }
  }

  onModuleDestroy(): void {
    for (const end of [...this.streams]) end();
    for (const w of [...this.waiters]) w.wake();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
