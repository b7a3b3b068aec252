import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiPropertyOptional, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { PublicRoute } from '../access/auth.guard';
import { ApiNoDependency } from '../common/api-errors.decorator';
import { HealthRegistry } from './health.registry';
import { DEPENDENCY_RETRY_AFTER_SECONDS } from '../common/dependency-errors';

export class DependencyHealth {
  @ApiProperty({ description: 'up when the dependency answered the check, down when it did not.', example: 'up', enum: ['up', 'down'] })
  status: 'up' | 'down';
  /** Why the dependency is down. */
  @ApiPropertyOptional({ description: 'Why the dependency is down.', example: 'connect ECONNREFUSED 127.0.0.1:3306' })
  error?: string;
}

export class HealthResponse {
  @ApiProperty({
    description: 'ok when the process (liveness) or every dependency (readiness) answers, else unavailable.',
    example: 'ok',
    enum: ['ok', 'unavailable'],
  })
  status: 'ok' | 'unavailable';
  /** One entry per dependency: database, and queue and storage where configured (readiness only: liveness checks none). */
  @ApiPropertyOptional({
    description: 'One entry per dependency: database, and queue and storage where configured (readiness only: liveness checks none).',
    type: 'object',
    additionalProperties: { $ref: '#/components/schemas/DependencyHealth' },
    example: { database: { status: 'up' } },
  })
  checks?: Record<string, DependencyHealth>;
}

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(private readonly registry: HealthRegistry) {}

  @Get('live')
  @PublicRoute()
  @ApiNoDependency()
  @HttpCode(200)
  @ApiOkResponse({ type: HealthResponse })
  @ApiOperation({
    summary: 'Check liveness',
    description: 'Answers 200 while the process runs; checks no dependency. No token needed.',
  })
  live(): HealthResponse {
    return { status: 'ok' };
  }

  @Get('ready')
  @PublicRoute()
  @ApiNoDependency()
  @ApiOkResponse({ type: HealthResponse })
  @ApiServiceUnavailableResponse({ type: HealthResponse, description: 'A dependency is down.' })
  @ApiOperation({
    summary: 'Check readiness',
    description:
      'Answers 200 when every dependency answers (the database; the queue and the object store where configured), else 503 with the state of each and a `Retry-After` header. No token needed.',
  })
  async ready(@Res({ passthrough: true }) res: Response): Promise<HealthResponse> {
    const checks = await this.registry.run();
    const ok = Object.values(checks).every((c) => c.status === 'up');
    res.status(ok ? 200 : 503);
    if (!ok) res.setHeader('Retry-After', String(DEPENDENCY_RETRY_AFTER_SECONDS));
    return { status: ok ? 'ok' : 'unavailable', checks };
  }
}
