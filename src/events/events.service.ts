import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { AccessPolicy, Scope } from '../access/access.policy';
import { Principal, Role } from '../access/principal';
import { currentCorrelationId, currentPrincipal } from '../common/request-context';
import { AppConfig } from '../config/app-config';
import { EVENT_TYPES, EventActor, EventDraft, EventEnvelope, EventType, EventVisibility } from './event-catalogue';
import { EventProgram, EventsRepository, NewEvent, OutboxTransaction } from './events.repository';

/** What an image event needs to know of its image (who may see the event). */
export interface ImageFacts {
  id: string;
  scope: Scope;
  ownerId: string;
  departmentId: string;
}

export const imageVisibility = (i: ImageFacts): EventVisibility => ({ scope: i.scope, ownerId: i.ownerId, departmentId: i.departmentId });

/**
 * Writes events into the outbox. Every module calls `record(manager, draft)` inside the transaction of the
 * change the event reports, so a change that rolls back leaves no event and a committed one always has its
 * event (the relay and the readers take it from there). The actor and correlation id come from the request
 * (or job) context.
 */
@Injectable()
export class EventsService {
  private readonly log = new Logger('Events');
  private readonly lastProgress = new Map<string, number>();

  constructor(
    private readonly repo: EventsRepository,
    private readonly cfg: AppConfig,
    private readonly access: AccessPolicy,
  ) {}

  /**
   * Events after `after` that `p` may see, oldest first. Image events follow the image's scope rules as they
   * were when the event was written; quota events are for the department's own callers (and super admins and
   * services, who see everything).
   */
  list(p: Principal, q: { after?: number; types?: string[]; imageId?: string; limit?: number }): Promise<EventEnvelope[]> {
    const visibility = this.access.visibility(p);
    return this.repo.list({
      after: q.after ?? 0,
      types: q.types,
      imageId: q.imageId,
      limit: q.limit ?? 100,
      visibility,
      readerDepartmentId: visibility === null || p.role === Role.Service ? undefined : p.departmentId,
    });
  }

  /** Writes the event in the transaction of `m`. */
  async record<T extends EventType>(m: OutboxTransaction, draft: EventDraft<T>): Promise<EventEnvelope | null> {
    if (!this.cfg.events.outbox) return null;
    return this.repo.insert(m, this.build(draft));
  }

  /**
   * The same write as statements, for modules whose transactions are raw programs (the quota): they
   * `yield*` it inside their own transaction.
   */
  program<T extends EventType>(draft: EventDraft<T>): EventProgram | Generator<never, null, unknown> {
    if (!this.cfg.events.outbox)
      return (function* () {
        return null;
      })();
    return this.repo.insertProgram(this.build(draft));
  }

  /**
   * An event that reports no change (a refusal): there is no transaction to join, so it is written in its
   * own. Never throws: a refusal is answered even when its event cannot be written (it is logged).
   */
  async recordAlone<T extends EventType>(draft: EventDraft<T>): Promise<EventEnvelope | null> {
    if (!this.cfg.events.outbox) return null;
    try {
      return await this.repo.insertAlone(this.build(draft));
    } catch (e) {
      this.log.error(`Writing a ${draft.type} event failed: ${(e as Error)?.message ?? String(e)}`);
      return null;
    }
  }

  /**
   * Throttle of image.import.progressed: true (and the clock restarts) when the image had no progress event
   * in the last EVENTS_PROGRESS_INTERVAL_SECONDS on this replica. An import runs on one replica at a time.
   */
  progressDue(imageId: string, now = Date.now()): boolean {
    const last = this.lastProgress.get(imageId);
    if (last !== undefined && now - last < this.cfg.events.progressIntervalMs) return false;
    if (this.lastProgress.size > 10_000) this.lastProgress.clear();
    this.lastProgress.set(imageId, now);
    return true;
  }

  /** The import ended (or restarts): the next progress event is due at once. */
  progressEnded(imageId: string): void {
    this.lastProgress.delete(imageId);
  }

  private build<T extends EventType>(d: EventDraft<T>): NewEvent {
    const info = EVENT_TYPES[d.type];
    const imageId = d.imageId ?? null;
    const departmentId = d.departmentId ?? d.visibility.departmentId ?? null;
    if (info.subject === 'image' && !imageId) throw new Error(`${d.type} needs an imageId`);
    if (info.subject === 'department' && !departmentId) throw new Error(`${d.type} needs a departmentId`);
    const p = currentPrincipal();
    const actor: EventActor = p ? { type: 'caller', user: p.userId, department: p.departmentId, role: p.role } : { type: 'system' };
    return {
      id: randomUUID(),
      type: d.type,
      version: info.version,
      time: Date.now(),
      subject: info.subject === 'image' ? `image:${imageId}` : `department:${departmentId}`,
      imageId,
      scope: d.visibility.scope,
      ownerId: d.visibility.ownerId,
      departmentId: d.visibility.departmentId,
      actor,
      correlationId: currentCorrelationId() ?? null,
      payload: d.payload,
    };
  }
}
