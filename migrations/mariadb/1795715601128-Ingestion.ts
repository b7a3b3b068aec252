import { MigrationInterface, QueryRunner } from 'typeorm';

export class Ingestion1795715601128 implements MigrationInterface {
  name = 'Ingestion1795715601128';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `images` ADD `checksumMd5` varchar(32) NULL');
    await queryRunner.query('ALTER TABLE `images` ADD `expectedChecksum` varchar(71) NULL');
    await queryRunner.query('ALTER TABLE `images` ADD `bytesPerSecond` bigint NULL');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `bytesPerSecond`');
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `expectedChecksum`');
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `checksumMd5`');
  }
}
