import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { PublicRoute } from '../access/auth.guard';
import { ApiNoDependency } from '../common/api-errors.decorator';
import { MetricsService } from './metrics.service';

@ApiTags('metrics')
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  @PublicRoute()
  @ApiNoDependency()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus text format.', schema: { type: 'string' } })
  @ApiOperation({
    summary: 'Get Prometheus metrics',
    description:
      'Prometheus metrics of this replica in the text exposition format: request durations by route and status, import bytes, durations and failures, queue depth, quota rejections, rate-limit refusals. No token needed; expose it on the internal network only.',
  })
  render(): Promise<string> {
    return this.metrics.render();
  }
}
