import { Logger, LogLevel as NestLogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication, NestExpressBodyParserOptionsFor } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { verifyJsonDepth } from './common/json-depth';
import { handleExpectContinue } from './ingestion/upload-body';
import { correlationMiddleware } from './common/request-context';
import { AppConfig } from './config/app-config';
import { JsonLogger } from './observability/json-logger';
import { buildOpenApi } from './openapi';
import { consoleHandler } from './console/console-static';

export interface CreateAppOptions {
  /** build the module graph without instantiating providers (used to generate openapi.yaml offline) */
  preview?: boolean;
  logger?: false | NestLogLevel[];
}

/** The one place the HTTP app is assembled: main, the tests and the OpenAPI script all use it. */
export async function createApp(config: AppConfig, opts: CreateAppOptions = {}): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    preview: opts.preview,
    abortOnError: false,
    logger: opts.logger ?? new JsonLogger(config.logLevel),
  });
  app.disable('x-powered-by');
  app.set('query parser', 'extended');
  // no automatic weak ETags on JSON answers: a browser's If-None-Match would get an undeclared 304 from a list;
  // the image file routes set their own strong ETag (the sha256) and answer 304 themselves
  app.set('etag', false);
  app.use(correlationMiddleware);
  // the web console (console/, built by npm run build:console): static files, outside the API and its document
  if (!opts.preview) app.use('/console', consoleHandler());
  // verify runs on the raw bytes before JSON.parse: a body nested past MAX_JSON_DEPTH never reaches validation
  // (Nest's option type leaves out verify because its rawBody option uses it; this app does not)
  app.useBodyParser('json', { limit: config.bodyLimitBytes, verify: verifyJsonDepth } as NestExpressBodyParserOptionsFor<'json'>);
  app.enableShutdownHooks();
  // Expect: 100-continue: the upload route answers it itself, after its checks (src/ingestion/upload-body.ts)
  if (!opts.preview) handleExpectContinue(app.getHttpServer());
  return app;
}

/** Serves Swagger UI at /docs and the document at /docs-json and /docs-yaml. */
export function mountDocs(app: NestExpressApplication): void {
  const doc = buildOpenApi(app);
  SwaggerModule.setup('docs', app, doc, {
    swaggerOptions: { persistAuthorization: true, displayRequestDuration: true },
    customSiteTitle: 'HCM Image Service API',
  });
  new Logger('Docs').debug('Swagger UI mounted at /docs');
}
