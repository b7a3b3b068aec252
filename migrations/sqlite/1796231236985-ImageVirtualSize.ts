import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Written by hand instead of TypeORM's table rebuild: ADD COLUMN keeps every other column and index as the earlier
 * migrations left them (a rebuild would copy the whole table definition as of today).
 */
export class ImageVirtualSize1796231236985 implements MigrationInterface {
  name = 'ImageVirtualSize1796231236985';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "images" ADD COLUMN "virtualSizeBytes" bigint');
    await queryRunner.query('ALTER TABLE "images" ADD COLUMN "actualSizeBytes" bigint');
    await queryRunner.query('CREATE INDEX "IDX_images_virtual_size" ON "images" ("virtualSizeBytes") ');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "IDX_images_virtual_size"');
    await queryRunner.query('ALTER TABLE "images" DROP COLUMN "actualSizeBytes"');
    await queryRunner.query('ALTER TABLE "images" DROP COLUMN "virtualSizeBytes"');
  }
}
