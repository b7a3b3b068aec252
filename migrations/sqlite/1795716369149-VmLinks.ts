import { MigrationInterface, QueryRunner } from 'typeorm';

export class VmLinks1795716369149 implements MigrationInterface {
  name = 'VmLinks1795716369149';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      'CREATE TABLE "vm_links" ("id" varchar(36) PRIMARY KEY NOT NULL, "vmId" varchar(64) NOT NULL, "imageId" varchar(36) NOT NULL, "relation" varchar CHECK( "relation" IN (\'CREATED_FROM\',\'ISO_MOUNTED\') ) NOT NULL, "originVmId" varchar(64), "vmName" varchar(255) NOT NULL, "ownerId" varchar(64) NOT NULL, "departmentId" varchar(64) NOT NULL, "reservationId" varchar(36), "imageName" varchar(255) NOT NULL, "imageKind" varchar CHECK( "imageKind" IN (\'IMAGE\',\'ISO\') ) NOT NULL, "since" datetime(3) NOT NULL, "imageDeletedAt" datetime(3))',
    );
    await queryRunner.query('CREATE INDEX "IDX_vm_links_image_since" ON "vm_links" ("imageId", "since", "id") ');
    await queryRunner.query('CREATE UNIQUE INDEX "UQ_vm_links_origin" ON "vm_links" ("originVmId") ');
    await queryRunner.query('CREATE UNIQUE INDEX "UQ_vm_links_vm_image_relation" ON "vm_links" ("vmId", "imageId", "relation") ');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "UQ_vm_links_vm_image_relation"');
    await queryRunner.query('DROP INDEX "UQ_vm_links_origin"');
    await queryRunner.query('DROP INDEX "IDX_vm_links_image_since"');
    await queryRunner.query('DROP TABLE "vm_links"');
  }
}
