import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsIn, IsInt, IsOptional, IsString, IsUUID, Max, MaxLength, Min } from 'class-validator';
import { ALL_EVENT_TYPES } from './event-catalogue';

const toList = ({ value }: { value: unknown }) =>
  value === undefined
    ? undefined
    : (Array.isArray(value) ? value : [value])
        .flatMap((v) => String(v).split(','))
        .map((v) => v.trim())
        .filter(Boolean);

export const MAX_EVENTS_PAGE = 500;

/** GET /events: a page of events after a cursor. */
export class ListEventsQuery {
  /** The cursor: events after this position (0 = from the oldest kept). Take `next` of the previous page. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @ApiPropertyOptional({ example: 1000, type: 'integer', minimum: 0, default: 0 })
  after?: number;

  /** Only these event types: `type=a&type=b` or `type=a,b`. */
  @IsOptional()
  @Transform(toList)
  @IsArray()
  @ArrayMaxSize(ALL_EVENT_TYPES.length)
  @IsIn(ALL_EVENT_TYPES, { each: true })
  @ApiPropertyOptional({ example: ['image.created'], type: [String], enum: ALL_EVENT_TYPES })
  type?: string[];

  /** Only the events of this image. */
  @IsOptional()
  @IsUUID()
  @ApiPropertyOptional({ example: '6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13', format: 'uuid' })
  imageId?: string;

  /** Events per page. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_EVENTS_PAGE)
  @ApiPropertyOptional({ example: 100, type: 'integer', minimum: 1, maximum: MAX_EVENTS_PAGE, default: 100 })
  limit?: number;
}

export class EventActorResponse {
  /** `caller`: an API caller (user, department, role from its token); `system`: the service itself. */
  @ApiProperty({ example: 'caller', enum: ['caller', 'system'] })
  type: 'caller' | 'system';

  @ApiPropertyOptional({ description: "The caller's user id (type caller).", example: 'u-alice' })
  user?: string;

  @ApiPropertyOptional({ description: "The caller's department (type caller).", example: 'dept-rd' })
  department?: string;

  @ApiPropertyOptional({ description: "The caller's role (type caller).", example: 'user' })
  role?: string;
}

/** One event: the envelope is the same for every type; `payload` is described per type in asyncapi.yaml. */
export class EventResponse {
  @ApiProperty({
    example: '0e7d3c2b-5a41-4f86-9b1e-7c2d4a6f8e90',
    format: 'uuid',
    description: 'Unique: consumers drop duplicates by it (delivery is at least once).',
  })
  id: string;

  @ApiProperty({
    description: 'The event type, e.g. `image.created`, `image.import.progressed`, `quota.changed`.',
    example: 'image.created',
    enum: ALL_EVENT_TYPES,
  })
  type: string;

  @ApiProperty({ example: 1, type: 'integer', description: 'The version of the payload of this type.' })
  version: number;

  @ApiProperty({ example: 1042, type: 'integer', description: 'The cursor: increases with every event, in commit order.' })
  position: number;

  @ApiProperty({ example: 1763626500000, type: 'integer', description: 'ms since the epoch' })
  time: number;

  @ApiProperty({
    description: 'The image the event is about; null for quota events.',
    example: '6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13',
    type: String,
    format: 'uuid',
    nullable: true,
  })
  imageId: string | null;

  @ApiProperty({ example: 7, type: 'integer', description: 'Order of the events of one image (or of one department for quota events), from 1.' })
  sequence: number;

  @ApiProperty({ description: 'Who caused the event: an API caller or the system (imports, sweeps).', type: EventActorResponse })
  actor: EventActorResponse;

  @ApiProperty({
    example: '9b2f4c1e-6a0d-4e8b-b7c3-2d5e8f1a0c47',
    type: String,
    nullable: true,
    description: 'X-Correlation-Id of the request (or job) that caused it.',
  })
  correlationId: string | null;

  @ApiProperty({
    description: 'What changed, in the shape of `type` at `version` (asyncapi.yaml documents each).',
    example: { status: 'ACTIVE', phase: 'READY' },
    type: 'object',
    additionalProperties: true,
  })
  payload: Record<string, unknown>;
}

export class EventPage {
  @ApiProperty({ description: 'The events after the cursor, oldest first (at most `limit`).', type: [EventResponse] })
  items: EventResponse[];

  /** The cursor to ask with next (`after=next`): the last position on this page, or `after` when it is empty. */
  @ApiProperty({ example: 1042, type: 'integer' })
  next: number;
}

/** GET /events/stream: the live feed. */
export class StreamEventsQuery {
  /**
   * Start after this position; without it (and without a Last-Event-ID header) the stream starts with what
   * happens from now on. Last-Event-ID (sent by EventSource when it reconnects) wins over it.
   */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @ApiPropertyOptional({ example: 1000, type: 'integer', minimum: 0 })
  after?: number;

  /** Only these event types: `type=a&type=b` or `type=a,b`. */
  @IsOptional()
  @Transform(toList)
  @IsArray()
  @ArrayMaxSize(ALL_EVENT_TYPES.length)
  @IsIn(ALL_EVENT_TYPES, { each: true })
  @ApiPropertyOptional({ example: ['image.import.progressed'], type: [String], enum: ALL_EVENT_TYPES })
  type?: string[];

  /** Only the events of this image (a console following one import). */
  @IsOptional()
  @IsUUID()
  @ApiPropertyOptional({ example: '6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13', format: 'uuid' })
  imageId?: string;

  /**
   * The bearer token, for EventSource (which cannot send headers); ignored when an Authorization header is
   * sent. Prefer a short-lived token: a URL can end up in browser history and proxy logs.
   */
  @IsOptional()
  @IsString()
  @MaxLength(8192)
  @ApiPropertyOptional({ example: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LWFsaWNlIn0.3q9Wc7vJ0m8rN1dXyZkPp2oT4fLhGsEaBu6iVnKcQwY' })
  access_token?: string;
}
