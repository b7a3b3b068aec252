import { MigrationInterface, QueryRunner } from 'typeorm';

/** OS category and hypervisor filtered together are read in createdAt order off one index (issue 16). */
export class OsHypervisorIndex1796260000000 implements MigrationInterface {
  name = 'OsHypervisorIndex1796260000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('CREATE INDEX "IDX_images_os_hv_created" ON "images" ("osCategory", "hypervisor", "createdAt", "id") ');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "IDX_images_os_hv_created"');
  }
}
