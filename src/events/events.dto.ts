import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsIn, IsInt, IsOptional, IsString, IsUUID, Max, MaxLength, Min } from 'class-validator';
import { ALL_EVENT_TYPES } from './event-catalogue';

const toList = ({ value }: { value: unknown }) =>
  value === undefined ? undefined : (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean);

export const MAX_EVENTS_PAGE = 500;

/** GET /events: a page of events after a cursor. */
export class ListEventsQuery {
  /** The cursor: events after this position (0 = from the oldest kept). Take `next` of the previous page. */
  @IsOptional() @Type(() => Number) @IsInt() @Min(0)
  @ApiPropertyOptional({ type: 'integer', minimum: 0, default: 0 })
  after?: number;

  /** Only these event types: `type=a&type=b` or `type=a,b`. */
  @IsOptional() @Transform(toList) @IsArray() @ArrayMaxSize(ALL_EVENT_TYPES.length) @IsIn(ALL_EVENT_TYPES, { each: true })
  @ApiPropertyOptional({ type: [String], enum: ALL_EVENT_TYPES })
  type?: string[];

  /** Only the events of this image. */
  @IsOptional() @IsUUID()
  @ApiPropertyOptional({ format: 'uuid' })
  imageId?: string;

  /** Events per page. */
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(MAX_EVENTS_PAGE)
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: MAX_EVENTS_PAGE, default: 100 })
  limit?: number;
}

export class EventActorResponse {
  /** `caller`: an API caller (user, department, role from its token); `system`: the service itself. */
  @ApiProperty({ enum: ['caller', 'system'] })
  type: 'caller' | 'system';

  @ApiPropertyOptional()
  user?: string;

  @ApiPropertyOptional()
  department?: string;

  @ApiPropertyOptional()
  role?: string;
}

/** One event: the envelope is the same for every type; `payload` is described per type in asyncapi.yaml. */
export class EventResponse {
  @ApiProperty({ format: 'uuid', description: 'Unique: consumers drop duplicates by it (delivery is at least once).' })
  id: string;

  @ApiProperty({ enum: ALL_EVENT_TYPES })
  type: string;

  @ApiProperty({ type: 'integer', description: 'The version of the payload of this type.' })
  version: number;

  @ApiProperty({ type: 'integer', description: 'The cursor: increases with every event, in commit order.' })
  position: number;

  @ApiProperty({ type: 'integer', description: 'ms since the epoch' })
  time: number;

  @ApiProperty({ type: String, format: 'uuid', nullable: true })
  imageId: string | null;

  @ApiProperty({ type: 'integer', description: 'Order of the events of one image (or of one department for quota events), from 1.' })
  sequence: number;

  @ApiProperty({ type: EventActorResponse })
  actor: EventActorResponse;

  @ApiProperty({ type: String, nullable: true, description: 'X-Correlation-Id of the request (or job) that caused it.' })
  correlationId: string | null;

  @ApiProperty({ type: 'object', additionalProperties: true })
  payload: Record<string, unknown>;
}

export class EventPage {
  @ApiProperty({ type: [EventResponse] })
  items: EventResponse[];

  /** The cursor to ask with next (`after=next`): the last position on this page, or `after` when it is empty. */
  @ApiProperty({ type: 'integer' })
  next: number;
}

/** GET /events/stream: the live feed. */
export class StreamEventsQuery {
  /**
   * Start after this position; without it (and without a Last-Event-ID header) the stream starts with what
   * happens from now on. Last-Event-ID (sent by EventSource when it reconnects) wins over it.
   */
  @IsOptional() @Type(() => Number) @IsInt() @Min(0)
  @ApiPropertyOptional({ type: 'integer', minimum: 0 })
  after?: number;

  /** Only these event types: `type=a&type=b` or `type=a,b`. */
  @IsOptional() @Transform(toList) @IsArray() @ArrayMaxSize(ALL_EVENT_TYPES.length) @IsIn(ALL_EVENT_TYPES, { each: true })
  @ApiPropertyOptional({ type: [String], enum: ALL_EVENT_TYPES })
  type?: string[];

  /** Only the events of this image (a console following one import). */
  @IsOptional() @IsUUID()
  @ApiPropertyOptional({ format: 'uuid' })
  imageId?: string;

  /**
   * The bearer token, for EventSource (which cannot send headers); ignored when an Authorization header is
   * sent. Prefer a short-lived token: a URL can end up in browser history and proxy logs.
   */
  @IsOptional() @IsString() @MaxLength(8192)
  @ApiPropertyOptional()
  access_token?: string;
}
