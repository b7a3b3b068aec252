import { AccessPolicy } from '../access/access.policy';
import { Principal, Role } from '../access/principal';
import { AppError } from '../common/errors';
import { createValidationPipe } from '../common/validation';
import { EventsService } from '../events/events.service';
import { ZonesService } from '../zones/zones.service';
import { CatalogRepository } from './catalog.repository';
import { ImageWithTags } from './image.record';
import { CatalogService } from './catalog.service';
import { CreateImageDto, normaliseTag, TAG_PATTERN, UpdateImageDto } from './image.dto';
import { ImageEntity } from './image.entity';
import { ImageLifecycle } from './image-lifecycle';
import { Hypervisor, ImageFormat, ImageKind, ImagePhase, IsoUsage, OsCategory, Scope, SourceType } from './image.enums';

const ZONE_ID = '6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f';
const who = (role: Role): Principal => ({ role, userId: `${role}-1`, departmentId: 'd1', name: role });

/**
 * The catalog service with its real policy and lifecycle (no listeners: quota, ingestion and VM links are
 * not part of these rules) and small fakes at its ports: an in-memory repository, one zone, an event log.
 */
function catalog() {
  const rows = new Map<string, ImageWithTags>();
  const events: string[] = [];
  const repo = {
    insert: async (image: ImageEntity, tags: string[], before?: (m: unknown) => Promise<void>, after?: (m: unknown) => Promise<void>) => {
      await before?.({});
      await after?.({});
      rows.set(image.id, { ...image, updatedAt: image.createdAt, tags } as ImageWithTags);
      // like the real repository: the answer is the inserted entity with its stored tags
      return { ...rows.get(image.id)! };
    },
    findById: async (id: string) => rows.get(id) ?? null,
    // like the real repository: given the record as read, answers it updated (null when it is gone)
    update: async (current: ImageWithTags, patch: Partial<ImageEntity>, tags: string[] | undefined, inTx?: (m: unknown) => Promise<void>) => {
      const row = rows.get(current.id);
      if (!row) return null;
      await inTx?.({});
      rows.set(current.id, { ...row, ...patch, tags: tags ?? row.tags });
      return { ...rows.get(current.id)! };
    },
  } as unknown as CatalogRepository;
  const zones = {
    get: async (id: string) => ({ id, hypervisor: Hypervisor.KVM }),
    getCached: async (id: string) => ({ id, hypervisor: Hypervisor.KVM }),
  } as unknown as ZonesService;
  const eventsPort = { record: async (_m: unknown, e: { type: string }) => void events.push(e.type) } as unknown as EventsService;
  return { service: new CatalogService(repo, new AccessPolicy(), zones, new ImageLifecycle(), eventsPort), rows, events };
}

const createDto = (over: Partial<CreateImageDto> = {}): CreateImageDto =>
  ({
    kind: ImageKind.Image,
    name: 'centos',
    osCategory: OsCategory.CentOS,
    format: ImageFormat.Qcow2,
    zoneId: ZONE_ID,
    source: { type: SourceType.Upload },
    ...over,
  }) as CreateImageDto;

async function codeOf(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return e.code;
  }
}

describe('catalog: who creates what scope (R9)', () => {
  it.each([
    [Role.SuperAdmin, Scope.Featured, null],
    [Role.SuperAdmin, Scope.Public, null],
    [Role.SuperAdmin, Scope.Private, null],
    [Role.Admin, Scope.Private, null],
    [Role.Admin, Scope.Public, 'SCOPE_CHANGE_FORBIDDEN'],
    [Role.Admin, Scope.Featured, 'SCOPE_CHANGE_FORBIDDEN'],
    [Role.User, Scope.Private, null],
    [Role.User, Scope.Public, 'SCOPE_CHANGE_FORBIDDEN'],
    [Role.User, Scope.Featured, 'SCOPE_CHANGE_FORBIDDEN'],
    [Role.Service, Scope.Private, 'FORBIDDEN'],
    [Role.Service, Scope.Featured, 'FORBIDDEN'],
  ] as const)('a %s creating a %s image: %s, and a refusal stores nothing', async (role, scope, want) => {
    const { service, rows, events } = catalog();
    expect(await codeOf(service.create(who(role), createDto({ scope })))).toBe(want);
    expect(rows.size).toBe(want === null ? 1 : 0);
    expect(events).toEqual(want === null ? ['image.created'] : []);
  });

  it('creates PRIVATE when no scope is given, owned by the caller and its department, QUEUED and inactive', async () => {
    const { service } = catalog();
    const image = await service.create(who(Role.User), createDto());
    expect(image).toMatchObject({
      scope: Scope.Private,
      ownerId: 'user-1',
      departmentId: 'd1',
      phase: ImagePhase.Queued,
      status: 'INACTIVE',
      hypervisor: Hypervisor.KVM,
      zoneId: ZONE_ID,
    });
  });

  it.each([
    ['an ISO with a disk format', { kind: ImageKind.Iso, isoUsage: IsoUsage.OS, format: ImageFormat.Qcow2 }, 'format'],
    ['an IMAGE with format iso', { format: ImageFormat.Iso }, 'format'],
    ['an IMAGE with an isoUsage', { isoUsage: IsoUsage.Tool }, 'isoUsage'],
    ['a url for an upload', { source: { type: SourceType.Upload, url: 'http://x/y.qcow2' } }, 'source.url'],
    ['a path for a URL source', { source: { type: SourceType.Url, url: 'http://x/y.qcow2', path: '/a' } }, 'source.path'],
  ] as const)('refuses %s (VALIDATION_FAILED on %s) and stores nothing', async (_what, over, field) => {
    const { service, rows } = catalog();
    const err = await service.create(who(Role.SuperAdmin), createDto(over as Partial<CreateImageDto>)).catch((e: AppError) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('VALIDATION_FAILED');
    expect((err as AppError).details).toEqual({ fields: [{ field, messages: [expect.any(String)] }] });
    expect(rows.size).toBe(0);
  });

  it('gives an ISO the format iso by default', async () => {
    const { service } = catalog();
    const iso = await service.create(who(Role.User), createDto({ kind: ImageKind.Iso, isoUsage: IsoUsage.OS, format: undefined }));
    expect(iso).toMatchObject({ format: ImageFormat.Iso, isoUsage: IsoUsage.OS });
  });
});

describe('catalog: tags are trimmed, lower-cased and stored once', () => {
  it('normalises a tag', () => {
    expect(normaliseTag('  Prod ')).toBe('prod');
    expect(normaliseTag('ÄRGER')).toBe('ärger');
  });

  it('stores Prod, PROD and " prod " as one tag, on create and on update', async () => {
    const { service } = catalog();
    const image = await service.create(who(Role.User), createDto({ tags: ['Prod', 'PROD', ' prod ', 'Zabbix'] }));
    expect(image.tags).toEqual(['prod', 'zabbix']);
    const updated = await service.update(who(Role.User), image.id, { tags: ['Linux', 'LINUX', 'x86'] } as UpdateImageDto);
    expect(updated.tags).toEqual(['linux', 'x86']);
  });

  it('records image.updated only for a real change of tags', async () => {
    const { service, events } = catalog();
    const image = await service.create(who(Role.User), createDto({ tags: ['a', 'b'] }));
    await service.update(who(Role.User), image.id, { tags: ['B', 'A'] } as UpdateImageDto);
    expect(events).toEqual(['image.created']);
    await service.update(who(Role.User), image.id, { tags: ['c'] } as UpdateImageDto);
    expect(events).toEqual(['image.created', 'image.updated']);
  });

  it.each([
    ['prod', true],
    ['centos 7.9', true],
    ['a._:/+-b', true],
    ['Überbau', true],
    ['-lead', false],
    [' lead', false],
    ['', false],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['semi;colon', false],
  ] as const)('tag %j is %s', (tag, ok) => {
    expect(TAG_PATTERN.test(tag)).toBe(ok);
  });
});

describe('catalog: fields that can never change (R18)', () => {
  const pipe = createValidationPipe();
  const validate = (body: object) => pipe.transform(body, { type: 'body', metatype: UpdateImageDto });

  it.each(['hypervisor', 'format', 'source', 'url', 'sourceUrl', 'kind', 'zoneId'])('refuses an update of %s with IMMUTABLE_FIELD', async (field) => {
    const err = await validate({ name: 'n', [field]: field === 'source' ? { type: 'URL' } : 'x' }).catch((e: AppError) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('IMMUTABLE_FIELD');
    expect((err as AppError).details).toEqual({ fields: [{ field, messages: [`${field} can never be changed`] }] });
  });

  it('names every immutable field sent together, and IMMUTABLE_FIELD wins over other mistakes', async () => {
    const err = (await validate({ name: 42, kind: 'ISO', zoneId: ZONE_ID }).catch((e: AppError) => e)) as AppError;
    expect(err.code).toBe('IMMUTABLE_FIELD');
    expect((err.details as { fields: Array<{ field: string }> }).fields.map((f) => f.field).sort()).toEqual(['kind', 'zoneId']);
  });

  it('lets every editable field through', async () => {
    const body = {
      name: 'n',
      description: 'd',
      osCategory: OsCategory.Ubuntu,
      osName: 'Ubuntu',
      osVersion: '24.04',
      osBits: 64,
      isoUsage: IsoUsage.OS,
      scope: Scope.Public,
      tags: ['a'],
    };
    await expect(validate(body)).resolves.toMatchObject(body);
  });

  it('refuses an unknown field with VALIDATION_FAILED, not silently', async () => {
    const err = (await validate({ name: 'n', colour: 'red' }).catch((e: AppError) => e)) as AppError;
    expect(err.code).toBe('VALIDATION_FAILED');
  });

  it('refuses isoUsage on a disk image in the service (VALIDATION_FAILED), changing nothing', async () => {
    const { service, rows } = catalog();
    const image = await service.create(who(Role.User), createDto());
    expect(await codeOf(service.update(who(Role.User), image.id, { isoUsage: IsoUsage.OS, name: 'other' } as UpdateImageDto))).toBe('VALIDATION_FAILED');
    expect(rows.get(image.id)!.name).toBe('centos');
  });
});
