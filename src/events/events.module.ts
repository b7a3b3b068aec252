import { Module } from '@nestjs/common';
import { EventRelay } from './event-relay';
import { EventStreamHub } from './event-stream.hub';
import { EventsController } from './events.controller';
import { EventsRepository } from './events.repository';
import { EventsService } from './events.service';

/**
 * Image events: the transactional outbox every module writes into (EventsService.record inside its own
 * transaction). Depends on no other feature module, so catalog, quota, ingestion and vm-links can all use it.
 */
@Module({
  controllers: [EventsController],
  providers: [EventsRepository, EventsService, EventStreamHub, EventRelay],
  exports: [EventsService],
})
export class EventsModule {}
