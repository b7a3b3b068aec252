import { MigrationInterface, QueryRunner } from 'typeorm';

const rebuildImages = async (q: QueryRunner, changes: [string, string][]): Promise<void> => {
  // SQLite cannot alter a CHECK: the table is rebuilt from its own current definition with one list changed, so
  // every other column and index stays as the earlier migrations left them
  const [{ sql }] = (await q.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'images'")) as { sql: string }[];
  const indexes = (await q.query("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'images' AND sql IS NOT NULL")) as { sql: string }[];
  let next = sql;
  for (const [from, to] of changes) {
    if (!next.includes(from)) throw new Error(`images CHECK does not read ${from}`);
    next = next.replace(from, to);
  }
  await q.query(next.replace(/^CREATE TABLE "images"/, 'CREATE TABLE "temporary_images"'));
  await q.query('INSERT INTO "temporary_images" SELECT * FROM "images"');
  await q.query('DROP TABLE "images"');
  await q.query('ALTER TABLE "temporary_images" RENAME TO "images"');
  for (const i of indexes) await q.query(i.sql);
};

const OLD = "'QUEUED','IMPORTING','VERIFYING','READY','FAILED','DISABLED')";
const NEW = "'QUEUED','IMPORTING','VERIFYING','READY','FAILED','DISABLED','CONVERTING')";
const OLD_SOURCE = "'URL','FILE','UPLOAD')";
const NEW_SOURCE = "'URL','FILE','UPLOAD','CONVERSION')";

/** Conversion on import: a zone's required storage format, the source file's checksum, a converted copy's source, CONVERTING. */
export class Conversion1796240000000 implements MigrationInterface {
  name = 'Conversion1796240000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "zones" ADD COLUMN "requiredFormat" varchar(16)');
    await queryRunner.query('ALTER TABLE "images" ADD COLUMN "sourceSha256" varchar(64)');
    await queryRunner.query('ALTER TABLE "images" ADD COLUMN "convertedFrom" varchar(36)');
    await rebuildImages(queryRunner, [
      [OLD, NEW],
      [OLD_SOURCE, NEW_SOURCE],
    ]);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`UPDATE "images" SET "phase" = 'FAILED' WHERE "phase" = 'CONVERTING'`);
    await queryRunner.query(`DELETE FROM "images" WHERE "sourceType" = 'CONVERSION'`);
    await rebuildImages(queryRunner, [
      [NEW, OLD],
      [NEW_SOURCE, OLD_SOURCE],
    ]);
    await queryRunner.query('ALTER TABLE "images" DROP COLUMN "convertedFrom"');
    await queryRunner.query('ALTER TABLE "images" DROP COLUMN "sourceSha256"');
    await queryRunner.query('ALTER TABLE "zones" DROP COLUMN "requiredFormat"');
  }
}
