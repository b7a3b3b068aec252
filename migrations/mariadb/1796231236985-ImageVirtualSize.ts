import { MigrationInterface, QueryRunner } from 'typeorm';

export class ImageVirtualSize1796231236985 implements MigrationInterface {
  name = 'ImageVirtualSize1796231236985';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `images` ADD `virtualSizeBytes` bigint NULL');
    await queryRunner.query('ALTER TABLE `images` ADD `actualSizeBytes` bigint NULL');
    await queryRunner.query('CREATE INDEX `IDX_images_virtual_size` ON `images` (`virtualSizeBytes`)');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX `IDX_images_virtual_size` ON `images`');
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `actualSizeBytes`');
    await queryRunner.query('ALTER TABLE `images` DROP COLUMN `virtualSizeBytes`');
  }
}
