import { MigrationInterface, QueryRunner } from 'typeorm';

/** Conversion on import: a zone's required storage format, the source file's checksum, a converted copy's source. */
export class Conversion1796240000000 implements MigrationInterface {
  name = 'Conversion1796240000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `zones` ADD `requiredFormat` varchar(16) NULL');
    await queryRunner.query('ALTER TABLE `images` ADD `sourceSha256` varchar(64) NULL');
    await queryRunner.query('ALTER TABLE `images` ADD `convertedFrom` varchar(36) NULL');
    await queryRunner.query(
      "ALTER TABLE `images` MODIFY `phase` enum ('QUEUED', 'IMPORTING', 'VERIFYING', 'READY', 'FAILED', 'DISABLED', 'CONVERTING') NOT NULL",
    );
    await queryRunner.query("ALTER TABLE `images` MODIFY `sourceType` enum ('URL', 'FILE', 'UPLOAD', 'CONVERSION') NOT NULL");
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DELETE FROM `images` WHERE `sourceType` = 'CONVERSION'");
    await queryRunner.query("UPDATE `images` SET `phase` = 'FAILED' WHERE `phase` = 'CONVERTING'");
    await queryRunner.query("ALTER TABLE `images` MODIFY `sourceType` enum ('URL', 'FILE', 'UPLOAD') NOT NULL");
    await queryRunner.query("ALTER TABLE `images` MODIFY `phase` enum ('QUEUED', 'IMPORTING', 'VERIFYING', 'READY', 'FAILED', 'DISABLED') NOT NULL");
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `convertedFrom`');
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `sourceSha256`');
    await queryRunner.query('ALTER TABLE `zones` DROP COLUMN `requiredFormat`');
  }
}
