import { Logger, LogLevel as NestLogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { correlationMiddleware } from './common/request-context';
import { AppConfig } from './config/app-config';
import { JsonLogger } from './observability/json-logger';
import { buildOpenApi } from './openapi';

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
  app.use(correlationMiddleware);
  app.useBodyParser('json', { limit: config.bodyLimitBytes });
  app.enableShutdownHooks();
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
