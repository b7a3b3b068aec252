import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { ApplyValueTransformers } from 'typeorm/util/ApplyValueTransformers';
import { MysqlConnection, mysqlExec, SqlResult, SqlStatement, StatementPipeline } from '../common/statement-pipeline';
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
export const byStoredOrder = (a: string, b: string): number =>
  // below U+D800 JavaScript's order of UTF-16 code units is the order of code points (and of UTF-8 bytes); only
  // surrogates (code points above U+FFFF) and U+E000-U+FFFF sort differently, so only those pay for the bytes
  BEYOND_BMP_ORDER.test(a) || BEYOND_BMP_ORDER.test(b) ? Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) : a < b ? -1 : a > b ? 1 : 0;
const BEYOND_BMP_ORDER = /[\uD800-\uFFFF]/;

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

/** Every write that can change what a filter matches runs this in its transaction. */
const BUMP: SqlStatement = { sql: 'UPDATE catalog_state SET version = version + 1 WHERE id = 1', params: [] };
interface Hydration {
  columns: string;
  /** the alias of the id column (null on a LEFT JOIN without a row) */
  idAlias: string;
  hydrate: (r: RawRow) => ImageEntity;
}

@Injectable()
export class CatalogRepository {
  private hydration?: Hydration;
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
  private contains(column: string): string {
    return this.sqlite ? `hcm_lower(${column}) LIKE ? ESCAPE '!'` : `LOWER(${column}) LIKE ? COLLATE utf8mb4_bin ESCAPE '!'`;
  }

  /**
   * A read outside any transaction. On MariaDB through a pooled connection's callback API: TypeORM's query
   * runner adds an event broadcast, a promise wrapper and a captured stack trace per statement (the stack alone
   * about 20 µs of a list's 700, issue 16); the rows are the driver's own either way. A driver error passes as
   * mysql2 raised it (a lost server still answers 503: isDependencyUnavailable reads its code). These reads are
   * therefore not in TypeORM's query log (`DB_LOG`) and take no part in its slow-query options.
   */
  private async read(sql: string, params: unknown[]): Promise<RawRow[]> {
    if (this.sqlite) return (await this.ds.query(sql, params)) as RawRow[];
    const conn = await (this.ds.driver as unknown as { obtainMasterConnection(): Promise<MysqlConnection> }).obtainMasterConnection();
    try {
      return (await mysqlExec(conn, { sql, params })).rows as RawRow[];
    } finally {
      conn.release();
    }
  }

  private async bump(m: EntityManager): Promise<void> {
    // plain SQL: the same statement TypeORM's increment builds, without building it every write
    await m.query(BUMP.sql);
  }

  private async version(): Promise<number> {
    const row = await this.ds.getRepository(CatalogStateEntity).findOneBy({ id: 1 });
    return row?.version ?? -1;
  }

  private async cachedTotal<T extends number | Record<string, number>>(key: string, compute: () => Promise<T>): Promise<T> {
    const version = await this.version();
    const hit = this.totals.get(key);
    if (hit && hit.version === version && version >= 0) return hit.value as T;
    return this.remember(key, version, await compute());
  }

  /** Caches a total counted at `version` (the oldest entry goes when the cache is full). */
  private remember<T extends number | Record<string, number>>(key: string, version: number, value: T): T {
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
    const answer = Object.assign(new ImageEntity(), image);
    const unique = [...new Set(tags)];
    await this.ds.transaction(async (m) => {
      // Every statement at once, through the transaction's pipeline (issue 16): the reserve step's (the quota),
      // the row, its tags, the version bump and the event go to MariaDB in one round trip, in this order, and
      // their answers are checked before the commit (a refusal anywhere rolls all of it back).
      const pipeline = StatementPipeline.of(m);
      const steps = await Promise.allSettled([
        before?.(m),
        pipeline.exec(this.insertSql(image)),
        unique.length ? pipeline.exec(this.insertTagsSql(image.id, unique)) : undefined,
        pipeline.exec(BUMP),
        after?.(m),
      ]);
      const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    });
    return Object.assign(answer, { tags: unique.sort(byStoredOrder) });
  }

  /** The INSERT of a whole row, with the values TypeORM would write (its transformers and driver conversions). */
  private insertSql(image: ImageEntity): SqlStatement {
    const driver = this.ds.driver;
    const names: string[] = [];
    const params: unknown[] = [];
    for (const column of this.ds.getMetadata(ImageEntity).columns) {
      let value = (image as unknown as Record<string, unknown>)[column.propertyName];
      if (value === undefined) continue; // the column's default
      if (column.transformer) value = ApplyValueTransformers.transformTo(column.transformer, value);
      names.push(driver.escape(column.databaseName));
      params.push(driver.preparePersistentValue(value, column));
    }
    return { sql: `INSERT INTO images (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`, params };
  }

  /** The tag rows of an image, each with the image's createdAt, taken from its row (written before, in the same transaction). */
  private insertTagsSql(id: string, unique: string[]): SqlStatement {
    return {
      sql: `INSERT INTO image_tags (imageId, tag, createdAt) SELECT i.id, v.tag, i.createdAt FROM images i, (${unique.map(() => 'SELECT ? AS tag').join(' UNION ALL ')}) v WHERE i.id = ?`,
      params: [...unique, id],
    };
  }

  /** One image with its tags, in one statement (the tags through a correlated subquery). */
  async findById(id: string): Promise<ImageWithTags | null> {
    const h = this.hydrator();
    const rows: RawRow[] = await this.read(`SELECT ${h.columns}, ${this.tagsColumn()} FROM images i WHERE i.id = ?`, [id]);
    return rows.length ? this.withTags(rows[0], h) : null;
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
        // Through the transaction's pipeline, they also go in one round trip (issue 16).
        const pipeline = StatementPipeline.of(m);
        const unique = tags ? [...new Set(tags)] : [];
        const steps = await Promise.allSettled([
          pipeline.exec({ sql, params }),
          tags ? pipeline.exec({ sql: 'DELETE FROM image_tags WHERE imageId = ?', params: [id] }) : undefined,
          unique.length ? pipeline.exec(this.insertTagsSql(id, unique)) : undefined,
          pipeline.exec(BUMP),
          inTx?.(m),
        ]);
        const failed = steps.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        // rows matched (mysql2 connects with FOUND_ROWS; updatedAt changes anyway), SQLite's changes
        if ((steps[0] as PromiseFulfilledResult<SqlResult>).value.affected === 0) throw gone;
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

  /**
   * A page and its total. One statement reads the catalog's version, the page's ids (a deferred join: paged on
   * the covering index first, then just those rows read), the rows and their tags; the total comes from the
   * cache when it was counted at that version (the common case: one statement per list), else a COUNT follows.
   * A single statement reads one consistent snapshot, so the version and the rows agree.
   */
  async list(visibility: VisibilityFilter, f: ImageFilterQuery, o: ListOptions): Promise<[ImageWithTags[], number]> {
    const where = this.where(visibility, f);
    const h = this.hydrator();
    const dir = o.order === 'asc' ? 'ASC' : 'DESC';
    const order = `i.${o.sort} ${dir}, i.id ${dir}`;
    const page = this.pageSql(visibility, f, o, where, dir, order);
    const rows: RawRow[] = await this.read(
      `SELECT cs.version AS v_, ${h.columns}, ${this.tagsColumn()}
       FROM (SELECT 1 AS one) d
       LEFT JOIN catalog_state cs ON cs.id = 1
       LEFT JOIN (${page.sql}) pg ON 1 = 1
       LEFT JOIN images i ON i.id = pg.pid
       ORDER BY ${order}`,
      [...page.params, Number(o.take), Number(o.skip)],
    );
    const version = rows[0]?.v_ == null ? -1 : Number(rows[0].v_);
    const items = rows.filter((r) => r[h.idAlias] != null).map((r) => this.withTags(r, h));
    const key = `list:${filterKey(visibility, f)}`;
    const hit = this.totals.get(key);
    const total =
      hit && hit.version === version && version >= 0
        ? (hit.value as number)
        : this.remember(key, version, Number((await this.read(`SELECT COUNT(*) AS n FROM images i WHERE ${where.sql}`, where.params))[0]?.n ?? 0));
    return [items, total];
  }

  /**
   * The ids of one page (its LIMIT and OFFSET come last). Filtered by a tag and in createdAt order (the default)
   * on MariaDB, the page is read from image_tags' (tag, createdAt, imageId) index in order, each candidate's image
   * row checked for the other filters, so it stops after a page whether the tag is rare or common (issue 16:
   * MariaDB otherwise reads every row of the tag and sorts them, 9-13 ms for a tag on 3,500 of 100,000 images, or
   * walks the createdAt index testing each image, 110-300 ms for a tag on 20). STRAIGHT_JOIN keeps that order
   * of tables. Otherwise (other sorts, SQLite) the images are walked and the tags tested.
   */
  private pageSql(
    visibility: VisibilityFilter,
    f: ImageFilterQuery,
    o: ListOptions,
    where: { sql: string; params: unknown[] },
    dir: string,
    order: string,
  ): { sql: string; params: unknown[] } {
    const tags = [...new Set((f.tags ?? []).map(normaliseTag))];
    if (this.sqlite || !tags.length || o.sort !== ImageSort.CreatedAt) {
      return { sql: `SELECT i.id AS pid FROM images i WHERE ${where.sql} ORDER BY ${order} LIMIT ? OFFSET ?`, params: where.params };
    }
    const rest = this.where(visibility, { ...f, tags: tags.slice(1) } as ImageFilterQuery);
    return {
      sql: `SELECT STRAIGHT_JOIN td.imageId AS pid FROM image_tags td JOIN images i ON i.id = td.imageId
            WHERE td.tag = ? AND ${rest.sql} ORDER BY td.createdAt ${dir}, td.imageId ${dir} LIMIT ? OFFSET ?`,
      params: [tags[0], ...rest.params],
    };
  }

  /** Counts, in one query, how many filtered images fall in each of the named visibility filters. */
  async countViews(all: VisibilityFilter, views: Record<string, VisibilityFilter>, f: ImageFilterQuery): Promise<Record<string, number>> {
    const where = this.where(all, f);
    const params: unknown[] = [];
    const selects = Object.entries(views).map(([name, vis]) => {
      const cond = this.visibilitySql(vis);
      params.push(...cond.params);
      return `SUM(CASE WHEN ${cond.sql} THEN 1 ELSE 0 END) AS cnt_${name}`;
    });
    return this.cachedTotal(`counts:${filterKey(all, f)}:${JSON.stringify(views)}`, async () => {
      const [raw] = await this.read(`SELECT ${selects.join(', ')} FROM images i WHERE ${where.sql}`, [...params, ...where.params]);
      return Object.fromEntries(Object.keys(views).map((k) => [k, Number(raw?.[`cnt_${k}`] ?? 0)]));
    });
  }

  /**
   * The WHERE condition of a filter, as SQL over the alias `i` with positional parameters (plain SQL: building
   * it through TypeORM's query builder and its name rewriting was a tenth of a list request's CPU, issue 16).
   */
  private where(visibility: VisibilityFilter, f: ImageFilterQuery): { sql: string; params: unknown[] } {
    const conds: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, ...ps: unknown[]) => {
      conds.push(sql);
      params.push(...ps);
    };
    if (visibility !== null) {
      const v = this.visibilitySql(visibility);
      add(`(${v.sql})`, ...v.params);
    }
    if (f.kind) add('i.kind = ?', f.kind);
    if (f.osCategory) add('i.osCategory = ?', f.osCategory);
    if (f.hypervisor) add('i.hypervisor = ?', f.hypervisor);
    if (f.status) add('i.status = ?', f.status);
    if (f.phase) add('i.phase = ?', f.phase);
    if (f.format) add('i.format = ?', f.format);
    // a UUID in any case is the same zone (ids are stored lower-case)
    if (f.zoneId) add('i.zoneId = ?', f.zoneId.toLowerCase());
    if (f.ownerId) add('i.ownerId = ?', f.ownerId);
    if (f.departmentId) add('i.departmentId = ?', f.departmentId);
    if (f.name) add(this.contains('i.name'), containsPattern(f.name));
    if (f.minVirtualSize !== undefined) add('i.virtualSizeBytes >= ?', Number(f.minVirtualSize));
    if (f.maxVirtualSize !== undefined) add('i.virtualSizeBytes <= ?', Number(f.maxVirtualSize));
    if (f.q) {
      const q = f.q;
      const status = Object.values(ImageStatus).find((st) => st === q.toUpperCase());
      const pattern = containsPattern(q);
      add(
        `(${this.contains('i.name')} OR ${this.contains('i.description')}${status ? ' OR i.status = ?' : ''})`,
        pattern,
        pattern,
        ...(status ? [status] : []),
      );
    }
    [...new Set((f.tags ?? []).map(normaliseTag))].forEach((tag, n) => {
      add(`EXISTS (SELECT 1 FROM image_tags t${n} WHERE t${n}.imageId = i.id AND t${n}.tag = ?)`, tag);
    });
    return { sql: conds.length ? conds.join(' AND ') : '1 = 1', params };
  }

  /** SQL for an OR of scope clauses, with positional parameters; an empty list matches nothing. */
  private visibilitySql(vis: VisibilityFilter): { sql: string; params: unknown[] } {
    if (vis === null) return { sql: '1 = 1', params: [] };
    if (vis.length === 0) return { sql: '1 = 0', params: [] };
    const params: unknown[] = [];
    const sql = vis
      .map((c: ScopeClause) => {
        if (!c.scopes.length) return '(1 = 0)';
        params.push(...c.scopes);
        const parts = [`i.scope IN (${c.scopes.map(() => '?').join(', ')})`];
        // exact (by code point on both databases): user `Alice` never sees `alice`'s private images
        if (c.ownerId !== undefined) {
          params.push(c.ownerId);
          parts.push('i.ownerId = ?');
        }
        if (c.departmentId !== undefined) {
          params.push(c.departmentId);
          parts.push('i.departmentId = ?');
        }
        return `(${parts.join(' AND ')})`;
      })
      .join(' OR ');
    return { sql, params };
  }

  /**
   * The image columns as TypeORM would hydrate them, read with plain SQL (`i` is the images alias): the entity
   * query builder's SQL generation and result mapping were a fifth of a list request's CPU (issue 16). Each
   * column goes through the driver's own hydration (prepareHydratedValue: dates, transformers), as in getMany.
   */
  private hydrator(): Hydration {
    if (this.hydration) return this.hydration;
    const driver = this.ds.driver;
    const columns = this.ds.getMetadata(ImageEntity).columns.filter((c) => !c.isVirtual);
    const aliases = columns.map((c, n) => ({ column: c, alias: `c${n}` }));
    // per column, decided once (a page of 50 is 1,750 values, issue 16): `asIs` where the driver's
    // prepareHydratedValue returns the value unchanged (text and integer columns without a transformer, and
    // simple-enums of strings, which it converts only when the enum holds numbers); `plain` where the
    // property is a plain one of the entity (no embedded or relation), so it is assigned directly
    const AS_IS_TYPES = new Set(['varchar', 'text', 'smallint', 'int', 'integer']);
    const steps = aliases.map(({ column, alias }) => ({
      column,
      alias,
      plain: !column.embeddedMetadata && !column.relationMetadata,
      asIs:
        !column.transformer &&
        ((typeof column.type === 'string' && AS_IS_TYPES.has(column.type)) ||
          (column.type === 'simple-enum' && (column.enum ?? []).every((v) => typeof v === 'string'))),
    }));
    this.hydration = {
      columns: aliases.map(({ column, alias }) => `i.${driver.escape(column.databaseName)} AS ${driver.escape(alias)}`).join(', '),
      idAlias: aliases.find(({ column }) => column.propertyName === 'id')!.alias,
      hydrate: (r: RawRow) => {
        const e = new ImageEntity() as unknown as Record<string, unknown>;
        for (const { column, alias, plain, asIs } of steps) {
          const v = r[alias];
          if (v === undefined) continue;
          const value = asIs ? v : driver.prepareHydratedValue(v, column);
          if (plain) e[column.propertyName] = value;
          else column.setEntityValue(e, value);
        }
        return e as unknown as ImageEntity;
      },
    };
    return this.hydration;
  }

  /**
   * An image's tags as one column, `tags_`: a correlated subquery joining them with commas (a tag never holds
   * one: TAG_PATTERN), so a row and its tags come in one statement.
   */
  private tagsColumn(): string {
    return this.sqlite
      ? `(SELECT group_concat(t.tag, ',') FROM image_tags t WHERE t.imageId = i.id) AS tags_`
      : `(SELECT GROUP_CONCAT(t.tag SEPARATOR ',') FROM image_tags t WHERE t.imageId = i.id) AS tags_`;
  }

  /** The entity of a row with its tags, in the database's order (ORDER BY tag: by code point on both databases). */
  private withTags(r: RawRow, h: Hydration): ImageWithTags {
    const tags = typeof r.tags_ === 'string' && r.tags_ !== '' ? r.tags_.split(',').sort(byStoredOrder) : [];
    return Object.assign(h.hydrate(r), { tags });
  }
}
