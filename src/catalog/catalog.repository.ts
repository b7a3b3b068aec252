import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Brackets, DataSource, EntityManager, SelectQueryBuilder, WhereExpressionBuilder } from 'typeorm';
import { ScopeClause, VisibilityFilter } from '../access/access.policy';
import { CatalogStateEntity, ImageEntity, ImageTagEntity } from './image.entity';
import { ImageWithTags } from './image.record';
import { ImageStatus } from './image.enums';
import { ImageFilterQuery, ImageSort, normaliseTag } from './image.dto';

/** More work inside a write's transaction (the events outbox): runs only when the write changed a row (an edit issues it alongside its UPDATE and rolls both back when no row matched). */
export type InTransaction = (m: EntityManager) => Promise<unknown>;

export interface DepartmentUsageQuery {
  departmentId?: string;
  excludeFromCount?: string[];
  excludeFromBytes?: string[];
}
export interface DepartmentUsage {
  departmentId: string;
  imageCount: number;
  imageBytes: number;
}

export interface ListOptions {
  sort: ImageSort;
  order: 'asc' | 'desc';
  skip: number;
  take: number;
}

/** The columns a worker or an edit may update; everything else is fixed at creation. */
export type ImagePatch = Partial<
  Pick<
    ImageEntity,
    | 'name'
    | 'description'
    | 'osCategory'
    | 'osName'
    | 'osVersion'
    | 'osBits'
    | 'isoUsage'
    | 'scope'
    | 'status'
    | 'phase'
    | 'statusReason'
    | 'sizeBytes'
    | 'virtualSizeBytes'
    | 'actualSizeBytes'
    | 'checksum'
    | 'checksumMd5'
    | 'bytesDone'
    | 'bytesTotal'
    | 'bytesPerSecond'
    | 'format'
    | 'sourceSha256'
  >
>;

/** A LIKE pattern for "contains `s`", lower-cased, with the wildcards and the escape character taken literally. */
const containsPattern = (s: string) => `%${s.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;

/** The order ORDER BY tag gives on both databases (by code point): the order of the UTF-8 bytes. */
export const byStoredOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

const TOTALS_CACHE_SIZE = 5000;

const NOT_FILTERS = new Set(['page', 'pageSize', 'sort', 'order', 'view']);

/** A stable key for everything that decides which rows match (never paging or sorting). */
function filterKey(visibility: VisibilityFilter, f: ImageFilterQuery): string {
  const fields = Object.entries(f)
    .filter(([k, v]) => v !== undefined && !NOT_FILTERS.has(k))
    .sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([visibility, fields]);
}

/**
 * The only place that touches the images, image_tags and catalog_state tables.
 *
 * Totals: counting tens of thousands of matching rows costs milliseconds per request, and a console asks the
 * same few questions over and over. Every write that can change what a filter matches bumps
 * catalog_state.version in its own transaction; totals are cached per (filter, version), so a cached total
 * is exact, on every replica, at the price of one primary-key read per list.
 */
type RawRow = Record<string, unknown>;

@Injectable()
export class CatalogRepository {
  private hydration?: { columns: string; hydrate: (r: RawRow) => ImageEntity };
  private readonly totals = new Map<string, { version: number; value: number | Record<string, number> }>();
  private readonly sqlite: boolean;

  constructor(@InjectDataSource() private readonly ds: DataSource) {
    this.sqlite = ds.options.type === 'better-sqlite3';
  }

  /*
   * One matching rule on both databases. Both compare text by code point (SQLite natively, MariaDB/MySQL
   * through utf8mb4_bin, migration BinaryCollation), so ids and tags match exactly with a plain `=` (tags are
   * stored normalised and the query is normalised the same way, so a tag matches however it is typed). Text
   * (name, q) is a case-insensitive, accent-sensitive substring: both sides lower-cased (JavaScript's
   * toLowerCase on SQLite through hcm_lower, LOWER on MariaDB), compared by code point.
   */
  private contains(column: string, param: string): string {
    return this.sqlite ? `hcm_lower(${column}) LIKE :${param} ESCAPE '!'` : `LOWER(${column}) LIKE :${param} COLLATE utf8mb4_bin ESCAPE '!'`;
  }

  private async bump(m: EntityManager): Promise<void> {
    // plain SQL: the same statement TypeORM's increment builds, without building it every write
    await m.query('UPDATE catalog_state SET version = version + 1 WHERE id = 1');
  }

  private async version(): Promise<number> {
    const row = await this.ds.getRepository(CatalogStateEntity).findOneBy({ id: 1 });
    return row?.version ?? -1;
  }

  private async cachedTotal<T extends number | Record<string, number>>(key: string, compute: () => Promise<T>): Promise<T> {
    const version = await this.version();
    const hit = this.totals.get(key);
    if (hit && hit.version === version && version >= 0) return hit.value as T;
    const value = await compute();
    if (this.totals.size >= TOTALS_CACHE_SIZE) this.totals.delete(this.totals.keys().next().value as string);
    this.totals.delete(key);
    this.totals.set(key, { version, value });
    return value;
  }

  /**
   * Inserts the image and its tags in one transaction and answers the record as a read would, without reading
   * anything back (issue 16): updatedAt is written as createdAt, so the row holds exactly the entity in memory,
   * and the tags are answered in the database's order (tagsOf: ORDER BY tag, by code point on both databases,
   * utf8mb4_bin and SQLite's BINARY), which is the order of their UTF-8 bytes. `before` runs in the transaction
   * before the row is written (the quota's reservation), `after` once the row and the version bump are (the
   * outbox event).
   */
  async insert(image: ImageEntity, tags: string[], before?: InTransaction, after?: InTransaction): Promise<ImageWithTags> {
    image.updatedAt = image.createdAt;
    // a copy: TypeORM's insert writes the raw values of defaulted columns back into the entity it is given
    // (a bigint default comes back as the string "0", not through the column's transformer)
    const answer = Object.assign(new ImageEntity(), image);
    const unique = [...new Set(tags)];
    await this.ds.transaction(async (m) => {
      await before?.(m);
      await m.insert(ImageEntity, Object.assign(new ImageEntity(), image));
      if (unique.length)
        await m.insert(
          ImageTagEntity,
          unique.map((tag) => ({ imageId: image.id, tag })),
        );
      await this.bump(m);
      await after?.(m);
    });
    return Object.assign(answer, { tags: unique.sort(byStoredOrder) });
  }

  async findById(id: string): Promise<ImageWithTags | null> {
    const [image] = await this.rowsById([id]);
    if (!image) return null;
    const tags = await this.tagsOf([id]);
    return Object.assign(image, { tags: tags.get(id) ?? [] });
  }

  /**
   * Applies an edit (and replaces the tags when given) in one transaction and answers the record as a read
   * would, without reading it back (issue 14): `current` is the row as the caller read it, and the edit's own
   * columns plus `updatedAt` (written by the code, so the row holds exactly the answer) are all that change.
   * The UPDATE is plain SQL (TypeORM's update builder was a noticeable part of a PATCH's CPU). Given only the
   * id, the answer is read after the commit. Null when the
   * image is gone (deleted since it was read): then nothing is written, `inTx` (the event) included.
   */
  async update(current: ImageWithTags | string, patch: ImagePatch, tags?: string[], inTx?: InTransaction): Promise<ImageWithTags | null> {
    const id = typeof current === 'string' ? current : current.id;
    const updatedAt = new Date();
    const gone = new Error('the image is gone');
    const changed = await this.ds
      .transaction(async (m) => {
        const { sql, params } = this.updateSql(id, { ...patch, updatedAt });
        // Every statement of the change is sent at once, without waiting for the answers in between (the
        // connection runs them back to back, in the order they are issued): catalog_state's version row and
        // the outbox's position row, which every writer queues on, are then held for one turn of the
        // application instead of one per statement (issue 14). The event is written before the UPDATE's
        // answer is known: when no row matched (the image was deleted since it was read), the transaction
        // is rolled back, event included.
        const steps = await Promise.allSettled([
          m.queryRunner!.query(sql, params, true) as Promise<{ affected?: number }>,
          tags ? this.replaceTags(m, id, tags) : undefined,
          this.bump(m),
          inTx?.(m),
        ]);
        const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        // rows matched (mysql2 connects with FOUND_ROWS; updatedAt changes anyway), SQLite's changes
        if ((steps[0] as PromiseFulfilledResult<{ affected?: number }>).value.affected === 0) throw gone;
        return true;
      })
      .catch((e: unknown) => {
        if (e === gone) return false;
        throw e;
      });
    if (!changed) return null;
    // given only the id (a caller that did not read the row): the answer is read
    if (typeof current === 'string') return this.findById(id);
    const unique = tags ? [...new Set(tags)].sort(byStoredOrder) : current.tags;
    return Object.assign(new ImageEntity(), current, patch, { updatedAt, tags: unique });
  }

  /** UPDATE images SET <the patch's columns> WHERE id = ?, each value as TypeORM would persist it. */
  private updateSql(id: string, patch: ImagePatch & { updatedAt: Date }): { sql: string; params: unknown[] } {
    const driver = this.ds.driver;
    const meta = this.ds.getMetadata(ImageEntity);
    const sets: string[] = [];
    const params: unknown[] = [];
    for (const [property, value] of Object.entries(patch)) {
      const column = meta.findColumnWithPropertyName(property);
      if (!column) throw new Error(`images has no column ${property}`);
      sets.push(`${driver.escape(column.databaseName)} = ?`);
      params.push(driver.preparePersistentValue(value, column));
    }
    params.push(id);
    return { sql: `UPDATE images SET ${sets.join(', ')} WHERE id = ?`, params };
  }

  /**
   * Conditional update: applies the patch only while the image is in one of `fromPhases`.
   * Returns false when the image moved on (or is gone), so two writers cannot both win a transition.
   */
  async transition(id: string, fromPhases: string[], patch: ImagePatch, inTx?: InTransaction): Promise<boolean> {
    if (!fromPhases.length) return false;
    const apply = (m: EntityManager) =>
      m.createQueryBuilder().update(ImageEntity).set(patch).where('id = :id', { id }).andWhere('phase IN (:...fromPhases)', { fromPhases }).execute();
    // progress counters alone change no filter result: no version bump, no transaction
    const progressOnly = Object.keys(patch).every((k) => k === 'bytesDone' || k === 'bytesTotal');
    if (progressOnly && !inTx) return ((await apply(this.ds.manager)).affected ?? 0) > 0;
    return this.ds.transaction(async (m) => {
      const ok = ((await apply(m)).affected ?? 0) > 0;
      if (ok && !progressOnly) await this.bump(m);
      if (ok) await inTx?.(m);
      return ok;
    });
  }

  /** The reason of an image in one of `phases`, without a phase change: one UPDATE, no version bump (no filter reads it). */
  async setStatusReason(id: string, phases: string[], statusReason: string | null): Promise<boolean> {
    const res = await this.ds
      .createQueryBuilder()
      .update(ImageEntity)
      .set({ statusReason })
      .where('id = :id', { id })
      .andWhere('phase IN (:...phases)', { phases })
      .execute();
    return (res.affected ?? 0) > 0;
  }

  /** Progress counters of an image in `phase`: one UPDATE, no transaction, no version bump (no filter looks at them). */
  async recordProgress(
    id: string,
    phase: string,
    patch: Pick<ImagePatch, 'bytesDone' | 'bytesTotal' | 'bytesPerSecond'>,
    inTx?: InTransaction,
  ): Promise<boolean> {
    const apply = async (m: EntityManager) =>
      ((await m.createQueryBuilder().update(ImageEntity).set(patch).where('id = :id', { id }).andWhere('phase = :phase', { phase }).execute()).affected ?? 0) >
      0;
    if (!inTx) return apply(this.ds.manager);
    return this.ds.transaction(async (m) => {
      const ok = await apply(m);
      if (ok) await inTx(m);
      return ok;
    });
  }

  /** Images in any of `phases`, least recently changed first (for start-up recovery), without tags. */
  findByPhases(phases: string[], limit: number, offset = 0): Promise<ImageEntity[]> {
    if (!phases.length) return Promise.resolve([]);
    return this.ds
      .getRepository(ImageEntity)
      .createQueryBuilder('i')
      .where('i.phase IN (:...phases)', { phases })
      .orderBy('i.updatedAt', 'ASC')
      .addOrderBy('i.id', 'ASC')
      .offset(offset)
      .limit(limit)
      .getMany();
  }

  async delete(id: string, inTx?: InTransaction): Promise<boolean> {
    return this.ds.transaction(async (m) => {
      await m.delete(ImageTagEntity, { imageId: id });
      const res = await m.delete(ImageEntity, { id });
      await this.bump(m);
      const ok = (res.affected ?? 0) > 0;
      if (ok) await inTx?.(m);
      return ok;
    });
  }

  countInZone(zoneId: string): Promise<number> {
    return this.ds.getRepository(ImageEntity).countBy({ zoneId });
  }

  /** Image count and total size per department (for the quota's reconcile), leaving some images out of each sum. */
  async usageByDepartment(o: DepartmentUsageQuery): Promise<DepartmentUsage[]> {
    const qb = this.ds.getRepository(ImageEntity).createQueryBuilder('i').select('i.departmentId', 'departmentId');
    const exCount = o.excludeFromCount ?? [];
    const exBytes = o.excludeFromBytes ?? [];
    qb.addSelect(exCount.length ? 'SUM(CASE WHEN i.id IN (:...exCount) THEN 0 ELSE 1 END)' : 'COUNT(*)', 'imageCount');
    qb.addSelect(
      exBytes.length ? 'SUM(CASE WHEN i.id IN (:...exBytes) THEN 0 ELSE COALESCE(i.sizeBytes, 0) END)' : 'SUM(COALESCE(i.sizeBytes, 0))',
      'imageBytes',
    );
    qb.setParameters({ exCount, exBytes });
    if (o.departmentId !== undefined) qb.where('i.departmentId = :departmentId', { departmentId: o.departmentId });
    const rows = await qb.groupBy('i.departmentId').getRawMany<{ departmentId: string; imageCount: string | number; imageBytes: string | number | null }>();
    return rows.map((r) => ({ departmentId: r.departmentId, imageCount: Number(r.imageCount ?? 0), imageBytes: Number(r.imageBytes ?? 0) }));
  }

  async list(visibility: VisibilityFilter, f: ImageFilterQuery, o: ListOptions): Promise<[ImageWithTags[], number]> {
    const base = this.filtered(visibility, f);
    const total = await this.cachedTotal(`list:${filterKey(visibility, f)}`, () => base.clone().getCount());
    if (total === 0 || o.skip >= total) return [[], total];
    const dir = o.order === 'asc' ? 'ASC' : 'DESC';
    // deferred join: page through ids on the (covering) index first, then read just those rows
    const idRows = await base
      .select('i.id', 'id')
      .orderBy(`i.${o.sort}`, dir)
      .addOrderBy('i.id', dir)
      .offset(o.skip)
      .limit(o.take)
      .getRawMany<{ id: string }>();
    const ids = idRows.map((r) => r.id);
    if (!ids.length) return [[], total];
    const byId = new Map((await this.rowsById(ids)).map((r) => [r.id, r]));
    const rows = ids.map((id) => byId.get(id)).filter((r): r is ImageEntity => r !== undefined);
    const tags = await this.tagsOf(rows.map((r) => r.id));
    return [rows.map((r) => Object.assign(r, { tags: tags.get(r.id) ?? [] })), total];
  }

  /** Counts, in one query, how many filtered images fall in each of the named visibility filters. */
  async countViews(all: VisibilityFilter, views: Record<string, VisibilityFilter>, f: ImageFilterQuery): Promise<Record<string, number>> {
    const qb = this.filtered(all, f);
    const params: Record<string, unknown> = {};
    const selects: string[] = [];
    let n = 0;
    for (const [name, vis] of Object.entries(views)) {
      const cond = this.visibilitySql(vis, `c${n++}`, params);
      selects.push(`SUM(CASE WHEN ${cond} THEN 1 ELSE 0 END) AS cnt_${name}`);
    }
    qb.select(selects.join(', ')).setParameters(params);
    return this.cachedTotal(`counts:${filterKey(all, f)}:${JSON.stringify(views)}`, async () => {
      const raw = await qb.getRawOne<Record<string, string | number | null>>();
      return Object.fromEntries(Object.keys(views).map((k) => [k, Number(raw?.[`cnt_${k}`] ?? 0)]));
    });
  }

  private filtered(visibility: VisibilityFilter, f: ImageFilterQuery): SelectQueryBuilder<ImageEntity> {
    const qb = this.ds.getRepository(ImageEntity).createQueryBuilder('i');
    qb.where('1 = 1');
    if (visibility !== null) {
      const params: Record<string, unknown> = {};
      qb.andWhere(`(${this.visibilitySql(visibility, 'v', params)})`, params);
    }
    if (f.kind) qb.andWhere('i.kind = :kind', { kind: f.kind });
    if (f.osCategory) qb.andWhere('i.osCategory = :osCategory', { osCategory: f.osCategory });
    if (f.hypervisor) qb.andWhere('i.hypervisor = :hypervisor', { hypervisor: f.hypervisor });
    if (f.status) qb.andWhere('i.status = :status', { status: f.status });
    if (f.phase) qb.andWhere('i.phase = :phase', { phase: f.phase });
    if (f.format) qb.andWhere('i.format = :format', { format: f.format });
    // a UUID in any case is the same zone (ids are stored lower-case)
    if (f.zoneId) qb.andWhere('i.zoneId = :zoneId', { zoneId: f.zoneId.toLowerCase() });
    if (f.ownerId) qb.andWhere('i.ownerId = :ownerId', { ownerId: f.ownerId });
    if (f.departmentId) qb.andWhere('i.departmentId = :departmentId', { departmentId: f.departmentId });
    if (f.name) qb.andWhere(this.contains('i.name', 'name'), { name: containsPattern(f.name) });
    if (f.minVirtualSize !== undefined) qb.andWhere('i.virtualSizeBytes >= :minVirtualSize', { minVirtualSize: f.minVirtualSize });
    if (f.maxVirtualSize !== undefined) qb.andWhere('i.virtualSizeBytes <= :maxVirtualSize', { maxVirtualSize: f.maxVirtualSize });
    if (f.q) {
      const q = f.q;
      const status = Object.values(ImageStatus).find((s) => s === q.toUpperCase());
      qb.andWhere(
        new Brackets((w: WhereExpressionBuilder) => {
          w.where(this.contains('i.name', 'q'), { q: containsPattern(q) }).orWhere(this.contains('i.description', 'q'));
          if (status) w.orWhere('i.status = :qStatus', { qStatus: status });
        }),
      );
    }
    [...new Set((f.tags ?? []).map(normaliseTag))].forEach((tag, n) => {
      qb.andWhere(`EXISTS (SELECT 1 FROM image_tags t${n} WHERE t${n}.imageId = i.id AND t${n}.tag = :tag${n})`, { [`tag${n}`]: tag });
    });
    return qb;
  }

  /** SQL for an OR of scope clauses; an empty list matches nothing. */
  private visibilitySql(vis: VisibilityFilter, prefix: string, params: Record<string, unknown>): string {
    if (vis === null) return '1 = 1';
    if (vis.length === 0) return '1 = 0';
    return vis
      .map((c: ScopeClause, n) => {
        const p = `${prefix}_${n}`;
        params[`${p}_scopes`] = c.scopes;
        const parts = [`i.scope IN (:...${p}_scopes)`];
        // exact (by code point on both databases): user `Alice` never sees `alice`'s private images
        if (c.ownerId !== undefined) {
          params[`${p}_owner`] = c.ownerId;
          parts.push(`i.ownerId = :${p}_owner`);
        }
        if (c.departmentId !== undefined) {
          params[`${p}_dept`] = c.departmentId;
          parts.push(`i.departmentId = :${p}_dept`);
        }
        return `(${parts.join(' AND ')})`;
      })
      .join(' OR ');
  }

  /**
   * The image rows with these ids (any order), as TypeORM would hydrate them, read with plain SQL: the entity
   * query builder's SQL generation and result mapping were a fifth of a list request's CPU (issue 16). Each
   * column goes through the driver's own hydration (prepareHydratedValue: dates, transformers), as in getMany.
   */
  private async rowsById(ids: string[]): Promise<ImageEntity[]> {
    if (!ids.length) return [];
    const h = this.hydrator();
    const rows: RawRow[] = await this.ds.query(`SELECT ${h.columns} FROM images WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
    return rows.map(h.hydrate);
  }

  private hydrator(): { columns: string; hydrate: (r: RawRow) => ImageEntity } {
    if (this.hydration) return this.hydration;
    const driver = this.ds.driver;
    const columns = this.ds.getMetadata(ImageEntity).columns.filter((c) => !c.isVirtual);
    const aliases = columns.map((c, n) => ({ column: c, alias: `c${n}` }));
    this.hydration = {
      columns: aliases.map(({ column, alias }) => `${driver.escape(column.databaseName)} AS ${driver.escape(alias)}`).join(', '),
      hydrate: (r: RawRow) => {
        const e = new ImageEntity();
        for (const { column, alias } of aliases) {
          const v = r[alias];
          if (v !== undefined) column.setEntityValue(e, driver.prepareHydratedValue(v, column));
        }
        return e;
      },
    };
    return this.hydration;
  }

  /** Tags per image, each image's in the database's order (ORDER BY tag: by code point on both databases). */
  private async tagsOf(ids: string[]): Promise<Map<string, string[]>> {
    const map = new Map<string, string[]>();
    if (!ids.length) return map;
    const rows: Array<{ imageId: string; tag: string }> = await this.ds.query(
      `SELECT imageId AS imageId, tag AS tag FROM image_tags WHERE imageId IN (${ids.map(() => '?').join(', ')}) ORDER BY tag ASC`,
      ids,
    );
    for (const r of rows) {
      const list = map.get(r.imageId);
      if (list) list.push(r.tag);
      else map.set(r.imageId, [r.tag]);
    }
    return map;
  }

  private async replaceTags(m: EntityManager, id: string, tags: string[]): Promise<void> {
    await m.delete(ImageTagEntity, { imageId: id });
    const unique = [...new Set(tags)];
    if (unique.length)
      await m.insert(
        ImageTagEntity,
        unique.map((tag) => ({ imageId: id, tag })),
      );
  }
}
