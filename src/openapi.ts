import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { ErrorBody } from './common/error-body.dto';
import { applyErrorContract } from './common/error-contract';
import { DEPENDENCY_RETRY_AFTER_SECONDS } from './common/dependency-errors';
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
  {
    name: 'images',
    description: 'The catalog of VM images and ISOs: create, list and search, edit, enable and disable, delete; upload, import and download the bytes.',
  },
  {
    name: 'file-sources',
    description: "The platform's file directory: the SMB shares (and folders, buckets) users copy large files to, to pick one when creating an image.",
  },
  { name: 'zones', description: 'The zones images are created in, each with its default hypervisor.' },
  { name: 'quotas', description: "Departments' limits and usage per resource, and reconciliation against the catalog." },
  { name: 'vm-links', description: 'For the compute side: the launch check, VMs created from an image, ISO mounts, VM deletion; and which VMs use an image.' },
  { name: 'quota-reservations', description: 'For other platform services: reserve quota, then grow, commit, release or refund it; idempotent by key.' },
  {
    name: 'events',
    description:
      'What changed, as a feed: image, import, VM-link and quota events from the transactional outbox, paged (GET /events) or live (Server-Sent Events); the same events go to RabbitMQ in the platform shape (asyncapi.yaml).',
  },
  { name: 'downloads', description: 'The signed, time-limited download URLs a launch hands out (filesystem store); no token needed.' },
  { name: 'health', description: 'Liveness and readiness probes; no token needed.' },
  { name: 'metrics', description: 'Prometheus metrics of this replica; no token needed.' },
  {
    name: 'development',
    description:
      'Embedded default only (a generated development secret): tokens for development users, for the console and trying things out. 404 in every other configuration.',
  },
];

/**
 * The operationId of every route, by `Controller.method`: verbNoun in camelCase, what a generated client calls
 * (`client.listImages()`). The generator fails on a route missing here and on an entry no route uses, so a new
 * route cannot ship with Swagger's `Catalog_list`-style default.
 */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  'CatalogController.list': 'listImages',
  'CatalogController.counts': 'countImages',
  'CatalogController.get': 'getImage',
  'CatalogController.create': 'createImage',
  'CatalogController.update': 'updateImage',
  'CatalogController.enable': 'enableImage',
  'CatalogController.disable': 'disableImage',
  'CatalogController.remove': 'deleteImage',
  'IngestionController.upload': 'uploadImageFile',
  'IngestionController.retry': 'retryImport',
  'ImageFilesController.download': 'downloadImageFile',
  'ImageFilesController.head': 'headImageFile',
  'ConversionController.create': 'createConversion',
  'FileSourcesController.list': 'listFileSources',
  'FileSourcesController.entries': 'listFileEntries',
  'ZonesController.list': 'listZones',
  'ZonesController.get': 'getZone',
  'ZonesController.create': 'createZone',
  'ZonesController.update': 'updateZone',
  'ZonesController.remove': 'deleteZone',
  'QuotasController.list': 'listQuotas',
  'QuotasController.get': 'getQuota',
  'QuotasController.setLimits': 'setQuotaLimits',
  'QuotasController.reconcile': 'reconcileQuotas',
  'LaunchesController.launch': 'createLaunch',
  'ImageVmsController.list': 'listImageVms',
  'VmsController.images': 'listVmImages',
  'VmsController.origin': 'registerVmOrigin',
  'VmsController.mount': 'mountIso',
  'VmsController.unmount': 'unmountIso',
  'VmsController.remove': 'deleteVm',
  'QuotaReservationsController.reserve': 'createReservation',
  'QuotaReservationsController.get': 'getReservation',
  'QuotaReservationsController.grow': 'growReservation',
  'QuotaReservationsController.commit': 'commitReservation',
  'QuotaReservationsController.release': 'releaseReservation',
  'QuotaReservationsController.refund': 'refundReservation',
  'EventsController.list': 'listEvents',
  'EventsController.stream': 'streamEvents',
  'DownloadsController.download': 'downloadSignedFile',
  'DownloadsController.head': 'headSignedFile',
  'HealthController.live': 'getLiveness',
  'HealthController.ready': 'getReadiness',
  'MetricsController.render': 'getMetrics',
  'DevTokensController.mint': 'createDevToken',
};

/** The operationId factory of the document: the table's entry, or a build failure naming the route. */
export function operationIdOf(controllerKey: string, methodKey: string): string {
  const id = OPERATION_IDS[`${controllerKey}.${methodKey}`];
  if (!id) throw new Error(`no operationId for ${controllerKey}.${methodKey}: add it to OPERATION_IDS in src/openapi.ts`);
  return id;
}

/** The response headers the service sends, declared once under components/headers and referenced per response. */
const HEADERS: Record<string, { description: string; schema: Record<string, unknown> }> = {
  'X-Correlation-Id': {
    description:
      "The request's correlation id: the caller's own `X-Correlation-Id` when it sent a well-formed one, else a new UUID. Also in every error body and in the logs.",
    schema: { type: 'string', example: '9b2f4c1e-6a0d-4e8b-b7c3-2d5e8f1a0c47' },
  },
  'Retry-After': {
    description: 'Seconds to wait before trying again (rate limited, or a dependency is unavailable).',
    schema: { type: 'integer', minimum: 0, example: DEPENDENCY_RETRY_AFTER_SECONDS },
  },
  Location: { description: 'The URL of the image just created.', schema: { type: 'string', example: '/images/6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13' } },
  ETag: {
    description: "A strong validator: the file's sha256 in quotes (size and time when no checksum is known yet).",
    schema: { type: 'string', example: '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"' },
  },
  'Accept-Ranges': { description: 'Byte ranges are supported (`Range: bytes=...`).', schema: { type: 'string', enum: ['bytes'], example: 'bytes' } },
  'Content-Length': {
    description: 'The number of bytes in the body: the whole file, or the range.',
    schema: { type: 'integer', minimum: 0, example: 1020264448 },
  },
  'Content-Range': {
    description: 'Which bytes of the file the body holds (206), or the file size (416: `bytes */{size}`).',
    schema: { type: 'string', example: 'bytes 0-1048575/1020264448' },
  },
  'Content-Disposition': {
    description: 'An attachment named after the image and its format (an ASCII `filename` and the exact UTF-8 `filename*`).',
    schema: { type: 'string', example: 'attachment; filename="centos7-base.qcow2"; filename*=UTF-8\'\'centos7-base.qcow2' },
  },
  'Last-Modified': { description: 'When the image record last changed.', schema: { type: 'string', example: 'Fri, 20 Nov 2026 08:15:00 GMT' } },
};
const headerKey = (name: string) => name.replace(/-/g, '');
const ref = (name: string) => ({ $ref: `#/components/headers/${headerKey(name)}` });

/** The routes that send an image's bytes (image-bytes' sendFileAnswer): their headers per status. */
const FILE_OPERATIONS = ['downloadImageFile', 'headImageFile', 'downloadSignedFile', 'headSignedFile'];
const FILE_HEADERS: Record<string, string[]> = {
  '200': ['ETag', 'Accept-Ranges', 'Content-Length', 'Content-Disposition', 'Last-Modified'],
  '206': ['ETag', 'Accept-Ranges', 'Content-Length', 'Content-Range', 'Content-Disposition', 'Last-Modified'],
  '304': ['ETag', 'Accept-Ranges', 'Content-Disposition', 'Last-Modified'],
  '416': ['Content-Range'],
};
/** The creates that answer a `Location` (status by operationId). */
const LOCATION_OPERATIONS: Record<string, string> = { createImage: '201', createConversion: '202' };

const STATUS_TEXT: Record<string, string> = {
  '200': 'OK.',
  '201': 'Created.',
  '202': 'Accepted: the work goes on in the background.',
  '204': 'Done; no body.',
};

/**
 * A query parameter typed by a named enum comes out as a bare `$ref` (the scanner drops its example): give it
 * the enum's first value as the example, so every parameter shows one.
 */
function enumParameterExamples(doc: OpenAPIObject): void {
  const schemas = (doc.components?.schemas ?? {}) as Record<string, { enum?: unknown[] }>;
  for (const item of Object.values(doc.paths) as Array<Record<string, { parameters?: Array<{ example?: unknown; schema?: { $ref?: string } }> }>>) {
    for (const op of Object.values(item)) {
      for (const p of op.parameters ?? []) {
        const target = p.schema?.$ref?.split('/').pop();
        const values = target ? schemas[target]?.enum : undefined;
        if (p.example === undefined && values?.length) p.example = values[0];
      }
    }
  }
}

/** Declares on every response the headers the service sends with it. */
function responseHeaders(doc: OpenAPIObject): void {
  doc.components = { ...doc.components, headers: Object.fromEntries(Object.entries(HEADERS).map(([name, h]) => [headerKey(name), h])) };
  for (const item of Object.values(doc.paths) as Array<
    Record<string, { operationId?: string; responses?: Record<string, { headers?: Record<string, unknown> }> }>
  >) {
    for (const op of Object.values(item)) {
      for (const [status, r] of Object.entries(op.responses ?? {}) as Array<[string, { description?: string; headers?: Record<string, unknown> }]>) {
        // a response declared by its type alone gets the status's meaning
        if (!r.description) r.description = STATUS_TEXT[status] ?? 'Answered.';
        const names = ['X-Correlation-Id'];
        if (status === '429' || status === '503') names.push('Retry-After');
        if (FILE_OPERATIONS.includes(op.operationId!)) names.push(...(FILE_HEADERS[status] ?? []));
        if (LOCATION_OPERATIONS[op.operationId!] === status) names.push('Location');
        r.headers = { ...r.headers, ...Object.fromEntries(names.map((n) => [n, ref(n)])) };
      }
    }
  }
}

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
    operationIdFactory: operationIdOf,
  });
  applyErrorContract(app, doc, operationIdOf);
  nullableReferences(doc);
  responseHeaders(doc);
  enumParameterExamples(doc);
  const ids = Object.values(doc.paths).flatMap((item) => Object.values(item as Record<string, { operationId?: string }>).map((op) => op.operationId));
  const unused = Object.values(OPERATION_IDS).filter((id) => !ids.includes(id));
  if (unused.length) throw new Error(`OPERATION_IDS (src/openapi.ts) names operations no route has: ${unused.join(', ')}`);
  const used = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item as Record<string, { tags?: string[] }>).flatMap((op) => op.tags ?? [])));
  const undeclared = [...used].filter((t) => !TAGS.some((d) => d.name === t));
  if (undeclared.length) throw new Error(`tags used but not described in TAGS (src/openapi.ts): ${undeclared.join(', ')}`);
  const { tags, ...rest } = doc;
  // keys sorted for a stable file; the tags keep their order (Swagger UI shows the sections in it)
  return { ...(sortKeys(rest) as OpenAPIObject), tags };
}
