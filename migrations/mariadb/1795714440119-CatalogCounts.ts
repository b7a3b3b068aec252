import { MigrationInterface, QueryRunner } from 'typeorm';

export class CatalogCounts1795714440119 implements MigrationInterface {
  name = 'CatalogCounts1795714440119';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `catalog_state` (`id` int NOT NULL, `version` bigint NOT NULL DEFAULT '0', PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query('INSERT INTO `catalog_state` (`id`, `version`) VALUES (1, 0)');
    await queryRunner.query('CREATE INDEX `IDX_images_size` ON `images` (`sizeBytes`)');
    await queryRunner.query('CREATE INDEX `IDX_images_created` ON `images` (`createdAt`)');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX `IDX_images_created` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_size` ON `images`');
    await queryRunner.query('DROP TABLE `catalog_state`');
  }
}
