import { Body, Controller, Get, Head, Module, Param, Post, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ApiOkResponse, ApiServiceUnavailableResponse, DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { IsString } from 'class-validator';
import { PublicRoute, Roles } from '../access/auth.guard';
import { Role } from '../access/principal';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { ApiErrors, ApiNoDependency } from './api-errors.decorator';
import { applyErrorContract } from './error-contract';
import { ErrorSet } from './errors';
import { RateLimited, RateLimiter } from '../rate-limit/rate-limit';
import { uuidPipe } from './uuid.pipe';

class ThingDto {
  @IsString()
  name: string;
}
class ThingQuery {
  @IsString()
  q?: string;
}

const THING_ERRORS: ErrorSet = ['ZONE_NOT_FOUND', 'QUOTA_EXCEEDED'];

@ApiErrors('INVALID_STATE')
@Controller('things')
class ThingsController {
  @Post()
  @Roles(Role.SuperAdmin)
  @RateLimited('create')
  @ApiErrors(THING_ERRORS)
  create(@Body() dto: ThingDto): ThingDto {
    return dto;
  }

  @Get(':id')
  @ApiOkResponse({ description: 'ok' })
  get(@Param('id', uuidPipe) id: string, @Query() q: ThingQuery): string {
    return id + String(q.q);
  }

  @Head(':id')
  @ApiErrors('IMAGE_NOT_FOUND')
  head(@Param('id', uuidPipe) id: string): string {
    return id;
  }

  @Post(':id/poke')
  poke(@Param('id') id: string): string {
    return id;
  }

  @Get()
  @PublicRoute()
  @ApiNoDependency()
  @ApiOkResponse({ description: 'ok' })
  probe(): string {
    return 'ok';
  }
}

@Controller('clash')
class ClashController {
  @Get()
  @ApiServiceUnavailableResponse({ description: 'down, with its own body' })
  clash(): string {
    return 'x';
  }
}

async function documentOf(...controllers: Array<new () => unknown>): Promise<OpenAPIObject> {
  // the rate-limit guard's dependencies, never instantiated in preview mode
  @Module({
    controllers,
    providers: [
      { provide: AppConfig, useValue: {} },
      { provide: MetricsService, useValue: {} },
      { provide: RateLimiter, useValue: {} },
    ],
  })
  class M {}
  const app = await NestFactory.create(M, { preview: true, logger: false, abortOnError: false });
  try {
    const doc = SwaggerModule.createDocument(app, new DocumentBuilder().build(), {
      operationIdFactory: (controllerKey: string, methodKey: string) => `${controllerKey.replace(/Controller$/, '')}_${methodKey}`,
    });
    return applyErrorContract(app, doc);
  } finally {
    await app.close();
  }
}

type Response = { 'x-error-codes'?: string[]; content?: Record<string, { schema: { allOf: Array<{ properties?: { code: { enum: string[] } } }> } }> };
const responses = (doc: OpenAPIObject, path: string, method: 'get' | 'post' | 'head') => doc.paths[path][method]!.responses as Record<string, Response>;
const codes = (rs: Record<string, Response>) => Object.fromEntries(Object.entries(rs).map(([s, r]) => [s, r['x-error-codes'] ?? null]));

describe('the error contract of a route: its declared sets plus what its traits imply', () => {
  it('adds 401 for a token, 403 for roles, 400/413/415 for a JSON body, 429 for a rate limit, 503 for a dependency, to the controller and route sets', async () => {
    const doc = await documentOf(ThingsController);
    const post = responses(doc, '/things', 'post');
    expect(codes(post)).toMatchObject({
      '400': ['VALIDATION_FAILED', 'MALFORMED_JSON'],
      '401': ['AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED'],
      '403': ['FORBIDDEN'],
      '404': ['ZONE_NOT_FOUND'],
      '409': ['INVALID_STATE', 'QUOTA_EXCEEDED'],
      '413': ['PAYLOAD_TOO_LARGE'],
      '415': ['UNSUPPORTED_MEDIA_TYPE'],
      '429': ['RATE_LIMITED'],
      '503': ['DEPENDENCY_UNAVAILABLE'],
    });
    // every JSON error response names its codes as an enum on `code` and has an example of each
    expect(post['409'].content!['application/json'].schema.allOf[1].properties!.code.enum).toEqual(['INVALID_STATE', 'QUOTA_EXCEEDED']);
    expect(doc.paths['/things'].post!.security).toEqual([{ bearer: [] }]);
  });

  it('declares 400 for validated parameters, body-parser errors for any method with a body, HEAD errors without a body, nothing more for a public route without dependencies', async () => {
    const doc = await documentOf(ThingsController);
    const get = codes(responses(doc, '/things/{id}', 'get'));
    expect(get['400']).toEqual(['VALIDATION_FAILED']);
    expect(get['413']).toBeUndefined();
    expect(get['403']).toBeUndefined();
    const head = responses(doc, '/things/{id}', 'head');
    expect(head['404']['x-error-codes']).toEqual(['IMAGE_NOT_FOUND']);
    for (const r of Object.values(head)) expect(r.content).toBeUndefined();
    expect(codes(responses(doc, '/things', 'get'))).toEqual({ '200': null, '409': ['INVALID_STATE'] });
    // no @Body, but the app-wide body-parser reads what a POST sends
    const poke = codes(responses(doc, '/things/{id}/poke', 'post'));
    expect([poke['400'], poke['413'], poke['415']]).toEqual([['MALFORMED_JSON'], ['PAYLOAD_TOO_LARGE'], ['UNSUPPORTED_MEDIA_TYPE']]);
    expect(doc.paths['/things'].get!.security).toBeUndefined();
  });

  it('refuses a status declared both as an answer of its own and by error codes', async () => {
    await expect(documentOf(ClashController)).rejects.toThrow(/GET \/clash: status 503 is declared both/);
  });
});
