import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { ErrorBody } from './common/error-body.dto';
import { DependencyHealth } from './health/health.controller';

const DESCRIPTION = `VM images and ISO images for the HYPERX HCM private cloud: catalog, scopes, quotas, ingestion and VM links.

Every call but /health/* needs \`Authorization: Bearer <JWT>\` (HS256 with the service's secret; claims sub, name, dept, role).
In the embedded default, \`npm run token -- --sub u1 --dept d1 --role super_admin\` prints one.

Every error answers \`{ code, message, correlationId, details? }\` with a stable \`code\`; each operation lists the codes it can return.`;

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as object)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Builds the OpenAPI document from the app's decorators (and the Swagger CLI plugin's metadata), keys sorted. */
export function buildOpenApi(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('HCM Image Service')
    .setDescription(DESCRIPTION)
    .setVersion('1.0.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    .build();
  const doc = SwaggerModule.createDocument(app, config, {
    extraModels: [ErrorBody, DependencyHealth],
    operationIdFactory: (controllerKey: string, methodKey: string) => `${controllerKey.replace(/Controller$/, '')}_${methodKey}`,
  });
  return sortKeys(doc) as OpenAPIObject;
}
