import { MigrationInterface, QueryRunner } from 'typeorm';

export class ImageCreatedMs1796228815892 implements MigrationInterface {
  name = 'ImageCreatedMs1796228815892';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX `IDX_images_name` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_scope_created` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_size` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_created` ON `images`');
    await queryRunner.query('ALTER TABLE `images` CHANGE `createdAt` `createdAt` datetime(3) NOT NULL');
    await queryRunner.query('CREATE INDEX `IDX_images_size` ON `images` (`sizeBytes`, `id`)');
    await queryRunner.query('CREATE INDEX `IDX_images_created` ON `images` (`createdAt`, `id`)');
    await queryRunner.query('CREATE INDEX `IDX_images_name` ON `images` (`name`, `id`)');
    await queryRunner.query('CREATE INDEX `IDX_images_scope_created` ON `images` (`scope`, `createdAt`, `id`)');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX `IDX_images_scope_created` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_name` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_created` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_size` ON `images`');
    await queryRunner.query('ALTER TABLE `images` CHANGE `createdAt` `createdAt` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)');
    await queryRunner.query('CREATE INDEX `IDX_images_created` ON `images` (`createdAt`)');
    await queryRunner.query('CREATE INDEX `IDX_images_size` ON `images` (`sizeBytes`)');
    await queryRunner.query('CREATE INDEX `IDX_images_scope_created` ON `images` (`scope`, `createdAt`)');
    await queryRunner.query('CREATE INDEX `IDX_images_name` ON `images` (`name`)');
  }
}
