import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * image_tags carries its image's createdAt, indexed after the tag (issue 16: tag filters walk it in order).
 * Written by hand (ADD COLUMN keeps the table as the earlier migrations left it; no rebuild).
 */
export class TagCreatedAt1796250000000 implements MigrationInterface {
  name = 'TagCreatedAt1796250000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "image_tags" ADD COLUMN "createdAt" datetime(3)');
    await queryRunner.query('UPDATE "image_tags" SET "createdAt" = (SELECT i."createdAt" FROM "images" i WHERE i."id" = "image_tags"."imageId")');
    await queryRunner.query('CREATE INDEX "IDX_image_tags_tag_created" ON "image_tags" ("tag", "createdAt", "imageId") ');
    await queryRunner.query('DROP INDEX "IDX_image_tags_tag"');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('CREATE INDEX "IDX_image_tags_tag" ON "image_tags" ("tag", "imageId") ');
    await queryRunner.query('DROP INDEX "IDX_image_tags_tag_created"');
    await queryRunner.query('ALTER TABLE "image_tags" DROP COLUMN "createdAt"');
  }
}
