import { Controller, Get, Headers, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CurrentPrincipal, QueryTokenAllowed } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { ApiErrors } from '../common/api-errors.decorator';
import { AppError } from '../common/errors';
import { AppConfig } from '../config/app-config';
import { EventStreamHub } from './event-stream.hub';
import { EventPage, EventResponse, ListEventsQuery, MAX_EVENTS_PAGE, StreamEventsQuery } from './events.dto';
import { EventsRepository } from './events.repository';
import { EventsService } from './events.service';

const LAST_EVENT_ID = /^\d{1,15}$/;

@ApiTags('events')
@ApiBearerAuth()
@ApiErrors('AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED')
@Controller('events')
export class EventsController {
  constructor(
    private readonly events: EventsService,
    private readonly repo: EventsRepository,
    private readonly hub: EventStreamHub,
    private readonly cfg: AppConfig,
  ) {}

  @Get()
  @ApiErrors('VALIDATION_FAILED')
  @ApiOperation({
    summary: 'List events after a cursor',
    description:
      "The events the caller may see after the cursor `after`, oldest first: image, import, VM-link and quota changes from the transactional outbox (the same events the message bus carries). Page on with `after=next`; an empty page means the caller is up to date. Image events follow the image's scope rules as they were when the event was written; quota events are for the department's own callers; super admins and services see everything.",
  })
  async list(@CurrentPrincipal() p: Principal, @Query() q: ListEventsQuery): Promise<EventPage> {
    const items = await this.events.list(p, { after: q.after, types: q.type, imageId: q.imageId, limit: q.limit });
    return { items: items as unknown as EventResponse[], next: items.length ? items[items.length - 1].position : (q.after ?? 0) };
  }

  @Get('stream')
  @QueryTokenAllowed()
  @ApiProduces('text/event-stream')
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'Resume after this position (the `id` of the last event received).',
    schema: { type: 'string', example: '1042' },
  })
  @ApiOkResponse({ description: 'An endless text/event-stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } })
  @ApiErrors('VALIDATION_FAILED')
  @ApiOperation({
    summary: 'Stream events live (Server-Sent Events)',
    description:
      'The live feed as Server-Sent Events: one `id: {position}`, `event: {type}`, `data: {event JSON}` per event the caller may see, in position order, and a `: keep-alive` comment when idle. Resumable: a reconnect with `Last-Event-ID` (EventSource sends it by itself) gets everything after that event. EventSource cannot send headers: pass the token as the `access_token` query parameter. A bad `Last-Event-ID` is 400 VALIDATION_FAILED.',
  })
  async stream(
    @CurrentPrincipal() p: Principal,
    @Query() q: StreamEventsQuery,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    if (lastEventId !== undefined && !LAST_EVENT_ID.test(lastEventId.trim())) {
      throw new AppError('VALIDATION_FAILED', 'Last-Event-ID must be the id (a position) of an event', {
        fields: [{ field: 'Last-Event-ID', messages: ['must be a non-negative integer'] }],
      });
    }
    let cursor = lastEventId !== undefined ? Number(lastEventId.trim()) : (q.after ?? (await this.repo.lastPosition()));
    const ac = new AbortController();
    const end = () => {
      ac.abort();
      if (!res.writableEnded) res.end();
    };
    const closed = this.hub.open(end);
    req.on('close', () => ac.abort());
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: 2000\n\n`);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), this.cfg.events.sseHeartbeatMs);
    try {
      while (!ac.signal.aborted) {
        // everything up to `known` is committed (positions are taken in commit order): once a page comes back
        // short, this stream has seen all it may see up to there, and waits for something newer
        const known = await this.repo.lastPosition();
        const batch = await this.events.list(p, { after: cursor, types: q.type, imageId: q.imageId, limit: MAX_EVENTS_PAGE });
        for (const e of batch) res.write(`id: ${e.position}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
        if (batch.length) cursor = batch[batch.length - 1].position;
        if (batch.length < MAX_EVENTS_PAGE) await this.hub.waitBeyond(Math.max(cursor, known), ac.signal);
      }
    } catch {
      // the database went away: end the stream; the client reconnects with Last-Event-ID
    } finally {
      clearInterval(heartbeat);
      closed();
      end();
    }
  }
}
