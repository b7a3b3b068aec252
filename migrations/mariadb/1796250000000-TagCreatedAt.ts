import { MigrationInterface, QueryRunner } from 'typeorm';

/** image_tags carries its image's createdAt, indexed after the tag (issue 16: tag filters walk it in order). */
export class TagCreatedAt1796250000000 implements MigrationInterface {
  name = 'TagCreatedAt1796250000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `image_tags` ADD `createdAt` datetime(3) NULL');
    await queryRunner.query('UPDATE `image_tags` t JOIN `images` i ON i.`id` = t.`imageId` SET t.`createdAt` = i.`createdAt`');
    await queryRunner.query('CREATE INDEX `IDX_image_tags_tag_created` ON `image_tags` (`tag`, `createdAt`, `imageId`)');
    await queryRunner.query('DROP INDEX `IDX_image_tags_tag` ON `image_tags`');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('CREATE INDEX `IDX_image_tags_tag` ON `image_tags` (`tag`, `imageId`)');
    await queryRunner.query('DROP INDEX `IDX_image_tags_tag_created` ON `image_tags`');
    await queryRunner.query('ALTER TABLE `image_tags` DROP COLUMN `createdAt`');
  }
}
