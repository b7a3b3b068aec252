import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiPropertyOptional, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { PublicRoute } from '../access/auth.guard';
import { ApiNoDependency } from '../common/api-errors.decorator';
import { HealthRegistry } from './health.registry';
import { DEPENDENCY_RETRY_AFTER_SECONDS } from '../common/dependency-errors';

export class DependencyHealth {
  @ApiProperty({ enum: ['up', 'down'] })
  status: 'up' | 'down';
  /** Why the dependency is down. */
  @ApiPropertyOptional({ description: 'Why the dependency is down.', example: 'connect ECONNREFUSED 127.0.0.1:3306' })
  error?: string;
}

export class HealthResponse {
  @ApiProperty({ enum: ['ok', 'unavailable'] })
  status: 'ok' | 'unavailable';
  /** One entry per dependency: database, and queue and storage where configured (readiness only: liveness checks none). */
  @ApiPropertyOptional({ type: 'object', additionalProperties: { $ref: '#/components/schemas/DependencyHealth' }, example: { database: { status: 'up' } } })
  checks?: Record<string, DependencyHealth>;
}

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(private readonly registry: HealthRegistry) {}

  /** Liveness: the process answers. No token needed. */
  @Get('live')
  @PublicRoute()
  @ApiNoDependency()
  @HttpCode(200)
  @ApiOkResponse({ type: HealthResponse })
  live(): HealthResponse {
    return { status: 'ok' };
  }

  /** Readiness: every dependency answers (database; queue and object store where configured). No token needed. */
  @Get('ready')
  @PublicRoute()
  @ApiNoDependency()
  @ApiOkResponse({ type: HealthResponse })
  @ApiServiceUnavailableResponse({ type: HealthResponse, description: 'A dependency is down.' })
  async ready(@Res({ passthrough: true }) res: Response): Promise<HealthResponse> {
    const checks = await this.registry.run();
    const ok = Object.values(checks).every((c) => c.status === 'up');
    res.status(ok ? 200 : 503);
    if (!ok) res.setHeader('Retry-After', String(DEPENDENCY_RETRY_AFTER_SECONDS));
    return { status: ok ? 'ok' : 'unavailable', checks };
  }
}
