import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { ErrorBody } from './common/error-body.dto';
import { applyErrorContract } from './common/error-contract';
import { DependencyHealth } from './health/health.controller';

const DESCRIPTION = `VM images and ISO images for the HYPERX HCM private cloud: catalog, scopes, quotas, ingestion and VM links.

Every call but /health/*, /metrics and the signed /downloads URLs needs \`Authorization: Bearer {token}\` (a JWT: HS256 with the service's secret; claims sub, name, dept, role).
In the embedded default, \`npm run token -- --sub u1 --dept d1 --role super_admin\` prints one.

Every error answers \`{ code, message, correlationId, details? }\` with a stable \`code\`. Each operation lists every status and code it can
answer: per error status, \`x-error-codes\` and an enum on \`code\` (a HEAD error has no body, only its status). The codes come from what the
route calls and from what it is (a token: 401; roles: 403; a JSON body: 400, 413, 415; validated parameters: 400; rate limited: 429; a
database, queue or object store behind it: 503 \`DEPENDENCY_UNAVAILABLE\`).`;

/** The sections of Swagger UI, in the order a person learns the service. */
export const TAGS: Array<{ name: string; description: string }> = [
  { name: 'images', description: 'The catalog of VM images and ISOs: create, list and search, edit, enable and disable, delete; upload, import and download the bytes.' },
  { name: 'file-sources', description: "The platform's file directory: the SMB shares (and folders, buckets) users copy large files to, to pick one when creating an image." },
  { name: 'zones', description: 'The zones images are created in, each with its default hypervisor.' },
  { name: 'quotas', description: "Departments' limits and usage per resource, and reconciliation against the catalog." },
  { name: 'vm-links', description: 'For the compute side: the launch check, VMs created from an image, ISO mounts, VM deletion; and which VMs use an image.' },
  { name: 'quota-reservations', description: 'For other platform services: reserve quota, then grow, commit, release or refund it; idempotent by key.' },
  { name: 'events', description: 'What changed, as a feed: image, import, VM-link and quota events from the transactional outbox, paged (GET /events) or live (Server-Sent Events); the same events go to RabbitMQ in the platform shape (asyncapi.yaml).' },
  { name: 'downloads', description: 'The signed, time-limited download URLs a launch hands out (filesystem store); no token needed.' },
  { name: 'health', description: 'Liveness and readiness probes; no token needed.' },
  { name: 'metrics', description: 'Prometheus metrics of this replica; no token needed.' },
  { name: 'development', description: 'Embedded default only (a generated development secret): tokens for development users, for the console and trying things out. 404 in every other configuration.' },
];

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

/**
 * A nullable property of a class type comes out of the scanner as `{ allOf: [$ref], nullable: true, type: object }`,
 * which in OpenAPI 3.0 still refuses null (`nullable` only widens its own `type`; the referenced object's type
 * refuses null). Say what is meant: the object or null.
 */
function nullableReferences(doc: OpenAPIObject): void {
  for (const schema of Object.values(doc.components?.schemas ?? {}) as Array<{ properties?: Record<string, Record<string, unknown>> }>) {
    for (const [name, prop] of Object.entries(schema.properties ?? {})) {
      const allOf = prop.allOf as unknown[] | undefined;
      if (prop.nullable !== true || !allOf || allOf.length !== 1) continue;
      const { allOf: _allOf, type: _type, nullable: _nullable, ...rest } = prop;
      schema.properties![name] = { ...rest, oneOf: [allOf[0], { type: 'object', nullable: true, enum: [null] }] };
    }
  }
}

/** Builds the OpenAPI document from the app's decorators (and the Swagger CLI plugin's metadata), keys sorted. */
export function buildOpenApi(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('HCM Image Service')
    .setDescription(DESCRIPTION)
    .setVersion('1.0.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  for (const t of TAGS) config.addTag(t.name, t.description);
  const doc = SwaggerModule.createDocument(app, config.build(), {
    extraModels: [ErrorBody, DependencyHealth],
    operationIdFactory: (controllerKey: string, methodKey: string) => `${controllerKey.replace(/Controller$/, '')}_${methodKey}`,
  });
  applyErrorContract(app, doc);
  nullableReferences(doc);
  const used = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item as Record<string, { tags?: string[] }>).flatMap((op) => op.tags ?? [])));
  const undeclared = [...used].filter((t) => !TAGS.some((d) => d.name === t));
  if (undeclared.length) throw new Error(`tags used but not described in TAGS (src/openapi.ts): ${undeclared.join(', ')}`);
  const { tags, ...rest } = doc;
  // keys sorted for a stable file; the tags keep their order (Swagger UI shows the sections in it)
  return { ...(sortKeys(rest) as OpenAPIObject), tags };
}
