/**
 * npm run bench:list-rows
 * The part of a list request that reads the page's rows and tags (issue 16, list CPU), in ONE process on
 * MariaDB: TypeORM's entity path (findBy(In(ids)) + the tag entities through the query builder, what the
 * catalog did before for the rows alone, without paging the ids or reading the version) against the catalog
 * repository's whole list read (one plain-SQL statement: version, paged ids, rows and tags, with per-column
 * hydration; the total cached), on the same page of 50 images with two tags each, alternating rounds so that other load falls on both alike. Checks that
 * both give the same entities, then prints the CPU ms per page of each and their ratio per round.
 * Settings: BENCH_ROUNDS (default 4), BENCH_READS (reads per side per round, default 300).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { DataSource, In } from 'typeorm';
import { CatalogRepository } from '../src/catalog/catalog.repository';
import { ImageSort } from '../src/catalog/image.dto';
import { ImageEntity, ImageTagEntity } from '../src/catalog/image.entity';
import { dataSourceOptions } from '../src/database/database.options';
import { createTestDatabase, dropTestDatabase, ensureTestUser, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../test/support/mariadb';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const READS = Number(process.env.BENCH_READS ?? 300);
const PAGE = 50;

async function main(): Promise<void> {
  await ensureTestUser();
  const name = await createTestDatabase('bench_list_rows');
  const ds = new DataSource(
    dataSourceOptions({
      type: 'mariadb',
      path: '',
      host: TEST_DB_HOST,
      port: TEST_DB_PORT,
      user: TEST_DB_USER,
      password: TEST_DB_PASSWORD,
      name,
      poolSize: 4,
      log: false,
    }),
  );
  await ds.initialize();
  try {
    const ids: string[] = [];
    for (let n = 0; n < PAGE; n++) {
      const id = randomUUID();
      ids.push(id);
      await ds.getRepository(ImageEntity).insert({
        id,
        kind: 'IMAGE',
        name: `image ${n}`,
        description: 'a page row',
        osCategory: 'UBUNTU',
        osName: 'Ubuntu',
        osVersion: '24.04',
        osBits: 64,
        hypervisor: 'KVM',
        format: 'qcow2',
        isoUsage: null,
        scope: 'PUBLIC',
        status: 'ACTIVE',
        phase: 'READY',
        statusReason: null,
        ownerId: `owner-${n % 7}`,
        departmentId: 'dept-1',
        zoneId: randomUUID(),
        sizeBytes: 123_456_789 + n,
        virtualSizeBytes: 9_000_000_000,
        actualSizeBytes: null,
        checksum: 'a'.repeat(64),
        checksumMd5: null,
        expectedChecksum: null,
        sourceSha256: null,
        convertedFrom: null,
        sourceType: 'URL',
        sourceUrl: `http://images.example/${n}.qcow2`,
        sourcePath: null,
        sourceName: null,
        bytesDone: 5,
        bytesTotal: 10,
        bytesPerSecond: null,
        createdAt: new Date(Date.UTC(2025, 0, 1) + n * 1000),
        updatedAt: new Date(Date.UTC(2025, 0, 2) + n * 1000),
      } as unknown as ImageEntity);
      await ds.getRepository(ImageTagEntity).insert([
        { imageId: id, tag: 'prod' },
        { imageId: id, tag: `t${n % 5}` },
      ]);
    }
    const repo = new CatalogRepository(ds);
    const withTags = (rows: ImageEntity[], tags: Map<string, string[]>) =>
      rows.map((r) => Object.assign(r, { tags: tags.get(r.id) ?? [] })).sort((a, b) => a.id.localeCompare(b.id));
    const entityPath = async () => {
      const rows = await ds.getRepository(ImageEntity).findBy({ id: In(ids) });
      const tagRows = await ds.getRepository(ImageTagEntity).createQueryBuilder('t').where('t.imageId IN (:...ids)', { ids }).orderBy('t.tag', 'ASC').getMany();
      const tags = new Map<string, string[]>();
      for (const t of tagRows) tags.set(t.imageId, [...(tags.get(t.imageId) ?? []), t.tag]);
      return withTags(rows, tags);
    };
    // the repository's whole list read: the page (paged ids, rows, tags, version) in one statement, the total cached
    const rawPath = async () =>
      (await repo.list(null, {}, { sort: ImageSort.CreatedAt, order: 'asc', skip: 0, take: PAGE }))[0].sort((a, b) => a.id.localeCompare(b.id));
    const same = isDeepStrictEqual(await entityPath(), await rawPath());
    const cpu = async (f: () => Promise<unknown>) => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < READS; i++) await f();
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1000 / READS;
    };
    console.log(
      `machine: ${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, load ${loadavg()[0].toFixed(2)}; node ${process.version}; ${new Date().toISOString()}`,
    );
    console.log(`a page of ${PAGE} images with 2 tags each, ${READS} reads per side per round; same entities from both paths: ${same ? 'yes' : 'NO'}`);
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const before = await cpu(entityPath);
      const after = await cpu(rawPath);
      ratios.push(after / before);
      console.log(
        `round ${round}: entity path ${before.toFixed(3)} ms, plain SQL + hydration ${after.toFixed(3)} ms per page; ratio ${(after / before).toFixed(2)}; load ${loadavg()[0].toFixed(2)}`,
      );
    }
    console.log(`CPU ratio (plain / entity), worst round: ${Math.max(...ratios).toFixed(2)}, best: ${Math.min(...ratios).toFixed(2)}`);
    if (!same) process.exitCode = 1;
  } finally {
    await ds.destroy();
    await dropTestDatabase(name);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
