import { randomUUID } from 'node:crypto';
import { Injectable, OnModuleInit } from '@nestjs/common';
import { AccessPolicy, ACT_ERRORS, Action, SCOPE_ERRORS, SEE_ERRORS, View } from '../access/access.policy';
import { Principal, Role } from '../access/principal';
import { AppError, ErrorSet, errorSet, notFound } from '../common/errors';
import { Page, pageOf } from '../common/pagination.dto';
import { EventPayloads } from '../events/event-catalogue';
import { EventsService, imageVisibility } from '../events/events.service';
import { ZONE_ERRORS, ZonesService } from '../zones/zones.service';
import { CatalogRepository, DepartmentUsage, DepartmentUsageQuery, ImagePatch } from './catalog.repository';
import {
  CreateImageDto,
  ImageCountsResponse,
  ImageFilterQuery,
  ImageSort,
  ListImagesQuery,
  normaliseChecksum,
  normaliseTag,
  UpdateImageDto,
} from './image.dto';
import { ImageEntity } from './image.entity';
import { ImageRecord, ImageWithTags } from './image.record';
import { DeleteOptions, ImageLifecycle } from './image-lifecycle';
import { assertTransition, phasesLeadingTo, statusOfPhase, TRANSITION_ERRORS } from './image-state';
import { ImageFormat, ImageKind, ImagePhase, Scope, SourceType } from './image.enums';

const normaliseTags = (tags: string[] | undefined) => [...new Set((tags ?? []).map(normaliseTag))];

const invalid = (field: string, message: string) => new AppError('VALIDATION_FAILED', message, { fields: [{ field, messages: [message] }] });

type TransitionEvent = {
  [K in 'image.import.started' | 'image.enabled' | 'image.activated' | 'image.disabled' | 'image.import.failed']: { type: K; payload: EventPayloads[K] };
}['image.import.started' | 'image.enabled' | 'image.activated' | 'image.disabled' | 'image.import.failed'];

/** Changes a worker (ingestion) may record along with a phase change. */
export type ProgressPatch = Pick<
  ImagePatch,
  | 'format'
  | 'sourceSha256'
  | 'sizeBytes'
  | 'virtualSizeBytes'
  | 'actualSizeBytes'
  | 'checksum'
  | 'checksumMd5'
  | 'bytesDone'
  | 'bytesTotal'
  | 'bytesPerSecond'
  | 'statusReason'
>;

@Injectable()
export class CatalogService implements OnModuleInit {
  constructor(
    private readonly repo: CatalogRepository,
    private readonly access: AccessPolicy,
    private readonly zones: ZonesService,
    private readonly lifecycle: ImageLifecycle,
    private readonly events: EventsService,
  ) {}

  onModuleInit(): void {
    this.zones.setUsageCounter((zoneId) => this.repo.countInZone(zoneId));
  }

  async create(p: Principal, dto: CreateImageDto, copyOf?: { convertedFrom: string; sourceSha256: string | null }): Promise<ImageWithTags> {
    const scope = dto.scope ?? Scope.Private;
    // the refusal is about the role, whatever the scope: a service creates nothing (R9: users and admins do)
    if (p.role === Role.Service) {
      throw new AppError('FORBIDDEN', 'A service may not create images or ISOs: they are created by users and administrators', { role: p.role });
    }
    if (!this.access.canCreate(p, scope)) {
      throw new AppError('SCOPE_CHANGE_FORBIDDEN', `A ${p.role} may not create ${scope} images`, { scope });
    }
    if ((dto.source.type === SourceType.Conversion) !== (copyOf !== undefined))
      throw invalid('source.type', 'a conversion is asked for with POST /images/{id}/conversions');
    const zone = await this.zones.getCached(dto.zoneId);
    const format = dto.kind === ImageKind.Iso ? (dto.format ?? ImageFormat.Iso) : dto.format!;
    if (dto.kind === ImageKind.Iso && format !== ImageFormat.Iso) throw invalid('format', 'an ISO has format iso');
    if (dto.kind === ImageKind.Image && format === ImageFormat.Iso) throw invalid('format', 'an IMAGE cannot have format iso; create an ISO instead');
    if (dto.kind === ImageKind.Image && dto.isoUsage !== undefined) throw invalid('isoUsage', 'isoUsage is for ISOs only');
    if (dto.source.type !== SourceType.Url && dto.source.url !== undefined) throw invalid('source.url', 'url is only for source type URL');
    if (dto.source.type !== SourceType.File && (dto.source.path !== undefined || dto.source.fileSource !== undefined)) {
      throw invalid('source.path', 'path and fileSource are only for source type FILE');
    }
    const image = Object.assign(new ImageEntity(), {
      id: randomUUID(),
      kind: dto.kind,
      name: dto.name,
      description: dto.description ?? '',
      osCategory: dto.osCategory,
      osName: dto.osName ?? '',
      osVersion: dto.osVersion ?? '',
      osBits: dto.osBits ?? 64,
      hypervisor: dto.hypervisor ?? zone.hypervisor,
      format,
      isoUsage: dto.kind === ImageKind.Iso ? dto.isoUsage! : null,
      scope,
      status: statusOfPhase(ImagePhase.Queued),
      phase: ImagePhase.Queued,
      statusReason: null,
      ownerId: p.userId,
      departmentId: p.departmentId,
      zoneId: zone.id,
      sizeBytes: null,
      virtualSizeBytes: null,
      actualSizeBytes: null,
      checksum: null,
      checksumMd5: null,
      expectedChecksum: dto.expectedChecksum === undefined ? null : normaliseChecksum(dto.expectedChecksum),
      sourceSha256: copyOf?.sourceSha256 ?? null,
      convertedFrom: copyOf?.convertedFrom ?? null,
      sourceType: dto.source.type,
      sourceUrl: dto.source.url ?? null,
      sourcePath: dto.source.path ?? null,
      sourceName: dto.source.type === SourceType.File ? (dto.source.fileSource ?? null) : null,
      bytesDone: 0,
      bytesTotal: dto.expectedSizeBytes ?? null,
      bytesPerSecond: null,
      createdAt: new Date(),
    } satisfies Omit<ImageRecord, 'updatedAt'>);
    await this.lifecycle.beforeCreate(image, p);
    const tags = normaliseTags(dto.tags);
    let saved: ImageWithTags;
    try {
      // one transaction: the listeners' reserve step (the quota), the row and its tags, the version bump and
      // the outbox event; a refusal anywhere rolls all of it back (issue 16)
      saved = await this.lifecycle.persist(image, (reserve) =>
        this.repo.insert(image, tags, reserve, (m) =>
          this.events.record(m, {
            type: 'image.created',
            imageId: image.id,
            visibility: imageVisibility(image),
            payload: {
              name: image.name,
              kind: image.kind,
              format: image.format,
              scope: image.scope,
              zoneId: image.zoneId,
              sourceType: image.sourceType,
              ownerId: image.ownerId,
              departmentId: image.departmentId,
            },
          }),
        ),
      );
    } catch (e) {
      await this.lifecycle.createAborted(image);
      throw e;
    }
    await this.lifecycle.afterCreate(saved);
    return saved;
  }

  async get(p: Principal, id: string): Promise<ImageWithTags> {
    const image = await this.repo.findById(id);
    this.access.assert(p, Action.See, image, id);
    return image;
  }

  /** For other modules that check access themselves (launch, download): the image if the caller may `action` it. */
  async getFor(p: Principal, id: string, action: Action): Promise<ImageWithTags> {
    const image = await this.repo.findById(id);
    this.access.assert(p, action, image, id);
    return image;
  }

  /** For workers: the image regardless of caller, or null when it is gone. */
  findInternal(id: string): Promise<ImageWithTags | null> {
    return this.repo.findById(id);
  }

  /** For workers (start-up recovery): images in these phases, least recently changed first, without tags. */
  findInPhases(phases: ImagePhase[], limit = 500, offset = 0): Promise<ImageRecord[]> {
    return this.repo.findByPhases(phases, limit, offset);
  }

  /**
   * For the quota's reconcile: per department, how many images there are and their total size, leaving
   * out of each sum the images whose usage the quota takes from their reservation instead (in flight).
   */
  imageUsageByDepartment(q: DepartmentUsageQuery): Promise<DepartmentUsage[]> {
    return this.repo.usageByDepartment(q);
  }

  async list(p: Principal, q: ListImagesQuery): Promise<Page<ImageWithTags> & { view: View }> {
    const view = q.view ?? this.access.defaultView(p);
    const page = q.page ?? 1;
    const pageSize = q.pageSize ?? 20;
    const [items, total] = await this.repo.list(this.access.viewFilter(p, view), q, {
      sort: q.sort ?? ImageSort.CreatedAt,
      order: q.order ?? 'desc',
      skip: (page - 1) * pageSize,
      take: pageSize,
    });
    return { ...pageOf(items, total, { page, pageSize }), view };
  }

  async counts(p: Principal, f: ImageFilterQuery): Promise<ImageCountsResponse> {
    const views = Object.fromEntries(Object.values(View).map((v) => [v, this.access.viewFilter(p, v)]));
    const c = await this.repo.countViews(this.access.visibility(p), views, f);
    return { all: c.all, featured: c.featured, public: c.public, private: c.private };
  }

  async update(p: Principal, id: string, dto: UpdateImageDto): Promise<ImageWithTags> {
    const image = await this.repo.findById(id);
    this.access.assert(p, Action.Edit, image, id);
    if (dto.scope !== undefined && dto.scope !== image.scope) this.access.assert(p, Action.ChangeScope, image, id, dto.scope);
    if (dto.isoUsage !== undefined && image.kind !== ImageKind.Iso) throw invalid('isoUsage', 'isoUsage is for ISOs only');
    const patch: ImagePatch = {};
    for (const k of ['name', 'description', 'osCategory', 'osName', 'osVersion', 'osBits', 'isoUsage', 'scope'] as const) {
      if (dto[k] !== undefined) (patch as Record<string, unknown>)[k] = dto[k];
    }
    const tags = dto.tags === undefined ? undefined : normaliseTags(dto.tags);
    // the event names what really changed: fields given with their current value are left out
    const values: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch)) if (k !== 'scope' && (image as unknown as Record<string, unknown>)[k] !== v) values[k] = v;
    if (tags && [...tags].sort().join('\n') !== [...image.tags].sort().join('\n')) values.tags = tags;
    const scopeChange = patch.scope !== undefined && patch.scope !== image.scope ? { from: image.scope, to: patch.scope } : null;
    const updated = await this.repo.update(image, patch, tags, (m) => {
      const after = { ...image, scope: patch.scope ?? image.scope };
      // both events issued at once: they join the UPDATE's round trip (issue 16), in this order
      const written: Array<Promise<unknown>> = [];
      if (Object.keys(values).length) {
        written.push(
          this.events.record(m, {
            type: 'image.updated',
            imageId: id,
            visibility: imageVisibility(after),
            payload: { fields: Object.keys(values), values },
          }),
        );
      }
      if (scopeChange) {
        // seen by whoever could see the image before or after: the wider of the two scopes
        const wider = scopeChange.from === Scope.Private ? scopeChange.to : scopeChange.to === Scope.Private ? scopeChange.from : scopeChange.to;
        written.push(
          this.events.record(m, {
            type: 'image.scope_changed',
            imageId: id,
            visibility: imageVisibility({ ...image, scope: wider }),
            payload: scopeChange,
          }),
        );
      }
      return Promise.all(written);
    });
    return updated ?? Promise.reject(notFound('IMAGE', id));
  }

  /** R7: admins enable or disable an image; only a READY image can be disabled, only a DISABLED one enabled. */
  async setEnabled(p: Principal, id: string, enabled: boolean, reason?: string): Promise<ImageWithTags> {
    const image = await this.repo.findById(id);
    this.access.assert(p, Action.EnableDisable, image, id);
    const to = enabled ? ImagePhase.Ready : ImagePhase.Disabled;
    if (image.phase === to) return image;
    await this.transition(id, to, { statusReason: enabled ? null : (reason ?? `Disabled by ${p.name}`) });
    return (await this.repo.findById(id))!;
  }

  async delete(p: Principal, id: string, opts: DeleteOptions): Promise<void> {
    const image = await this.repo.findById(id);
    this.access.assert(p, Action.Delete, image, id);
    await this.lifecycle.beforeDelete(image, p, opts);
    const facts = await this.lifecycle.describeDelete(image);
    const deleted = await this.repo.delete(id, (m) =>
      this.events.record(m, {
        type: 'image.deleted',
        imageId: id,
        visibility: imageVisibility(image),
        payload: { name: image.name, kind: image.kind, linkedVms: facts.linkedVms },
      }),
    );
    if (deleted) await this.lifecycle.afterDelete(image);
  }

  /**
   * The one place an image changes phase (and so status). The change is conditional on the phase the
   * image is in, so two concurrent writers cannot both win; it throws INVALID_STATE when it is not allowed.
   */
  async transition(id: string, to: ImagePhase, patch: ProgressPatch = {}, from?: ImagePhase[]): Promise<void> {
    const image = await this.repo.findById(id);
    if (!image) throw notFound('IMAGE', id);
    assertTransition(id, image.phase, to);
    const allowedFrom = from ?? phasesLeadingTo(to);
    const event = this.transitionEvent(image, to, patch);
    if (to === ImagePhase.Importing || image.phase === ImagePhase.Importing) this.events.progressEnded(id);
    const ok = await this.repo.transition(
      id,
      allowedFrom.includes(image.phase) ? [image.phase] : [],
      {
        ...patch,
        phase: to,
        status: statusOfPhase(to),
        ...(to === ImagePhase.Ready || to === ImagePhase.Queued ? { statusReason: patch.statusReason ?? null } : {}),
      },
      event ? (m) => this.events.record(m, { ...event, imageId: id, visibility: imageVisibility(image) }) : undefined,
    );
    if (!ok) {
      const now = await this.repo.findById(id);
      if (!now) throw notFound('IMAGE', id);
      throw new AppError('INVALID_STATE', `Image ${id} changed state concurrently (now ${now.phase})`, { status: now.status, phase: now.phase });
    }
  }

  /**
   * Says why an unfinished image is not ACTIVE yet (an attempt failed and another follows) without changing its
   * phase. False when the image is gone or in none of `phases`.
   */
  async explainPending(id: string, reason: string | null, phases: ImagePhase[]): Promise<boolean> {
    return this.repo.setStatusReason(id, phases, reason === null ? null : reason.slice(0, 1000));
  }

  /** Progress while converting (qemu-img's fraction of the virtual size): no phase change, no event. */
  async recordConversionProgress(id: string, patch: Pick<ImagePatch, 'bytesDone' | 'bytesTotal' | 'bytesPerSecond'>): Promise<boolean> {
    return this.repo.recordProgress(id, ImagePhase.Converting, patch);
  }

  /** Progress while importing: no phase change, just the counters. False when the image is gone or no longer importing. */
  async recordProgress(id: string, patch: Pick<ImagePatch, 'bytesDone' | 'bytesTotal' | 'bytesPerSecond'>): Promise<boolean> {
    if (!this.events.progressDue(id)) return this.repo.recordProgress(id, ImagePhase.Importing, patch);
    return this.repo.recordProgress(id, ImagePhase.Importing, patch, async (m) => {
      const image = await m.findOneBy(ImageEntity, { id });
      if (!image) return;
      const bytesDone = patch.bytesDone ?? image.bytesDone;
      const bytesTotal = patch.bytesTotal !== undefined ? patch.bytesTotal : image.bytesTotal;
      await this.events.record(m, {
        type: 'image.import.progressed',
        imageId: id,
        visibility: imageVisibility(image),
        payload: {
          bytesDone,
          bytesTotal,
          percent: bytesTotal ? Math.min(100, Math.floor((bytesDone / bytesTotal) * 100)) : null,
          bytesPerSecond: patch.bytesPerSecond !== undefined ? patch.bytesPerSecond : image.bytesPerSecond,
        },
      });
    });
  }

  /** The event a phase change reports, if any (moves back to QUEUED, and to VERIFYING, report none). */
  private transitionEvent(image: ImageRecord, to: ImagePhase, patch: ProgressPatch): TransitionEvent | null {
    const from = image.phase;
    switch (to) {
      case ImagePhase.Importing:
        return {
          type: 'image.import.started',
          payload: { sourceType: image.sourceType, bytesTotal: patch.bytesTotal !== undefined ? patch.bytesTotal : image.bytesTotal },
        };
      case ImagePhase.Ready: {
        if (from === ImagePhase.Disabled) return { type: 'image.enabled', payload: {} };
        const virtualSize = (patch as Record<string, unknown>).virtualSizeBytes ?? (image as unknown as Record<string, unknown>).virtualSizeBytes;
        return {
          type: 'image.activated',
          payload: {
            sizeBytes: (patch.sizeBytes ?? image.sizeBytes)!,
            checksum: (patch.checksum ?? image.checksum)!,
            ...(typeof virtualSize === 'number' ? { virtualSizeBytes: virtualSize } : {}),
          },
        };
      }
      case ImagePhase.Disabled:
        return { type: 'image.disabled', payload: { reason: patch.statusReason ?? null } };
      case ImagePhase.Failed:
        return { type: 'image.import.failed', payload: { reason: patch.statusReason ?? image.statusReason ?? 'The import failed' } };
      default:
        return null;
    }
  }
}

/**
 * What each CatalogService call raises itself. The lifecycle listeners add theirs (quota, ingestion, VM links
 * export their sets for create and delete); the routes compose both.
 */
export const CATALOG_ERRORS = {
  // FORBIDDEN: a service may not create images at all
  create: errorSet(SCOPE_ERRORS, ZONE_ERRORS.get, 'VALIDATION_FAILED', 'FORBIDDEN'),
  list: errorSet('VALIDATION_FAILED'),
  get: SEE_ERRORS,
  update: errorSet(ACT_ERRORS, SCOPE_ERRORS, 'VALIDATION_FAILED', 'IMMUTABLE_FIELD'),
  setEnabled: errorSet(ACT_ERRORS, TRANSITION_ERRORS),
  delete: ACT_ERRORS,
} as const satisfies Record<string, ErrorSet>;
