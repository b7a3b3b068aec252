import { randomUUID } from 'node:crypto';
import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AppError, ErrorSet, notFound } from '../common/errors';
import { Page, pageOf } from '../common/pagination.dto';
import { CreateZoneDto, ListZonesQuery, UpdateZoneDto } from './zone.dto';
import { Hypervisor, ZoneEntity } from './zone.entity';
import { ZonesRepository } from './zones.repository';

/** Answers how many images a zone holds; registered by the catalog so zones need not know images. */
export type ZoneUsageCounter = (zoneId: string) => Promise<number>;

/**
 * How long a zone read for a create may be reused (issue 16: one SELECT fewer per create). Zones change
 * rarely; a write in this replica drops its entry at once, a write in another replica is seen here at the
 * latest after this TTL. A version check would cost the round trip the cache saves, so a short TTL it is:
 * the worst case is an image created up to 5 s after another replica deleted or changed its zone, which is
 * the same race a create and a zone delete on two replicas already have without a cache (nothing locks the
 * zone between its read and the image's insert), only wider. Unknown ids are never cached.
 */
export const ZONE_CACHE_TTL_MS = 5000;
const ZONE_CACHE_SIZE = 1000;

@Injectable()
export class ZonesService implements OnApplicationBootstrap {
  private readonly logger = new Logger(ZonesService.name);
  private usageCounter: ZoneUsageCounter = () => Promise.resolve(0);
  private readonly cache = new Map<string, { zone: ZoneEntity; until: number }>();

  constructor(
    private readonly repo: ZonesRepository,
    private readonly cfg: AppConfig,
  ) {}

  setUsageCounter(fn: ZoneUsageCounter): void {
    this.usageCounter = fn;
  }

  /** The embedded default starts with one KVM zone so a newcomer can create images at once. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.cfg.seedDefaultZone) return;
    if ((await this.repo.count()) > 0) return;
    const zone = await this.create({ name: 'default', hypervisor: Hypervisor.KVM, description: 'Created at first start' });
    this.logger.log(`Seeded zone "default" (${zone.id})`);
  }

  async get(id: string): Promise<ZoneEntity> {
    const z = await this.repo.findById(id);
    if (!z) throw notFound('ZONE', id);
    return z;
  }

  /**
   * The zone as `get` answers it, possibly read up to ZONE_CACHE_TTL_MS ago (for the catalog's create: a copy,
   * so callers cannot change the cached entity).
   */
  async getCached(id: string, now = Date.now()): Promise<ZoneEntity> {
    const hit = this.cache.get(id);
    if (hit && hit.until > now) return Object.assign(new ZoneEntity(), hit.zone);
    const z = await this.get(id);
    if (this.cache.size >= ZONE_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(id, { zone: Object.assign(new ZoneEntity(), z), until: now + ZONE_CACHE_TTL_MS });
    return z;
  }

  async list(q: ListZonesQuery): Promise<Page<ZoneEntity>> {
    const page = q.page ?? 1;
    const size = q.pageSize ?? 20;
    const [items, total] = await this.repo.list((page - 1) * size, size);
    return pageOf(items, total, q);
  }

  async create(dto: CreateZoneDto): Promise<ZoneEntity> {
    await this.assertNameFree(dto.name);
    const zone = Object.assign(new ZoneEntity(), {
      id: randomUUID(),
      name: dto.name,
      hypervisor: dto.hypervisor,
      description: dto.description ?? '',
      requiredFormat: dto.requiredFormat ?? null,
    });
    return this.repo.insert(zone);
  }

  async update(id: string, dto: UpdateZoneDto): Promise<ZoneEntity> {
    const zone = await this.get(id);
    if (dto.name !== undefined && dto.name !== zone.name) await this.assertNameFree(dto.name);
    const patch: UpdateZoneDto = {};
    if (dto.name !== undefined) patch.name = dto.name;
    if (dto.hypervisor !== undefined) patch.hypervisor = dto.hypervisor;
    if (dto.description !== undefined) patch.description = dto.description;
    if (dto.requiredFormat !== undefined) patch.requiredFormat = dto.requiredFormat;
    if (Object.keys(patch).length) await this.repo.update(id, patch);
    this.cache.clear();
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    await this.get(id);
    const images = await this.usageCounter(id);
    if (images > 0) throw new AppError('ZONE_IN_USE', `Zone ${id} still holds ${images} image(s)`, { images });
    await this.repo.delete(id);
    this.cache.clear();
  }

  private async assertNameFree(name: string): Promise<void> {
    if (await this.repo.findByName(name)) throw new AppError('ZONE_NAME_TAKEN', `A zone named "${name}" exists`, { name });
  }
}

/** What each ZonesService call can raise. */
export const ZONE_ERRORS = {
  get: ['ZONE_NOT_FOUND'],
  create: ['ZONE_NAME_TAKEN'],
  update: ['ZONE_NOT_FOUND', 'ZONE_NAME_TAKEN'],
  delete: ['ZONE_NOT_FOUND', 'ZONE_IN_USE'],
} as const satisfies Record<string, ErrorSet>;
