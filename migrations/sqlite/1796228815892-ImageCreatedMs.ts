import { MigrationInterface, QueryRunner } from 'typeorm';

export class ImageCreatedMs1796228815892 implements MigrationInterface {
  name = 'ImageCreatedMs1796228815892';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "IDX_images_name"');
    await queryRunner.query('DROP INDEX "IDX_images_scope_created"');
    await queryRunner.query('DROP INDEX "IDX_images_size"');
    await queryRunner.query('DROP INDEX "IDX_images_created"');
    await queryRunner.query('DROP INDEX "IDX_images_zone"');
    await queryRunner.query('DROP INDEX "IDX_images_dept_scope"');
    await queryRunner.query('DROP INDEX "IDX_images_owner_scope"');
    await queryRunner.query(
      "CREATE TABLE \"temporary_images\" (\"id\" varchar(36) PRIMARY KEY NOT NULL, \"kind\" varchar CHECK( \"kind\" IN ('IMAGE','ISO') ) NOT NULL, \"name\" varchar(255) NOT NULL, \"description\" varchar(2000) NOT NULL DEFAULT (''), \"osCategory\" varchar CHECK( \"osCategory\" IN ('CENTOS','UBUNTU','DEBIAN','REDHAT','ROCKY','SUSE','OPENEULER','KYLIN','UOS','OTHER_LINUX','WINDOWS_VIRTIO','WINDOWS_IDE','OTHER') ) NOT NULL, \"osName\" varchar(128) NOT NULL DEFAULT (''), \"osVersion\" varchar(64) NOT NULL DEFAULT (''), \"osBits\" smallint NOT NULL DEFAULT (64), \"hypervisor\" varchar CHECK( \"hypervisor\" IN ('KVM','VMWARE','XEN','HYPERV') ) NOT NULL, \"format\" varchar CHECK( \"format\" IN ('qcow2','raw','vmdk','vhd','vhdx','iso') ) NOT NULL, \"isoUsage\" varchar CHECK( \"isoUsage\" IN ('OS','TOOL') ), \"scope\" varchar CHECK( \"scope\" IN ('FEATURED','PUBLIC','PRIVATE') ) NOT NULL, \"status\" varchar CHECK( \"status\" IN ('ACTIVE','INACTIVE') ) NOT NULL, \"phase\" varchar CHECK( \"phase\" IN ('QUEUED','IMPORTING','VERIFYING','READY','FAILED','DISABLED') ) NOT NULL, \"statusReason\" varchar(1000), \"ownerId\" varchar(64) NOT NULL, \"departmentId\" varchar(64) NOT NULL, \"zoneId\" varchar(36) NOT NULL, \"sizeBytes\" bigint, \"checksum\" varchar(64), \"sourceType\" varchar CHECK( \"sourceType\" IN ('URL','FILE','UPLOAD') ) NOT NULL, \"sourceUrl\" varchar(2048), \"sourcePath\" varchar(1024), \"sourceName\" varchar(32), \"bytesDone\" bigint NOT NULL DEFAULT (0), \"bytesTotal\" bigint, \"createdAt\" datetime(3) NOT NULL, \"updatedAt\" datetime NOT NULL DEFAULT (datetime('now')), \"checksumMd5\" varchar(32), \"expectedChecksum\" varchar(71), \"bytesPerSecond\" bigint)",
    );
    await queryRunner.query(
      'INSERT INTO "temporary_images"("id", "kind", "name", "description", "osCategory", "osName", "osVersion", "osBits", "hypervisor", "format", "isoUsage", "scope", "status", "phase", "statusReason", "ownerId", "departmentId", "zoneId", "sizeBytes", "checksum", "sourceType", "sourceUrl", "sourcePath", "sourceName", "bytesDone", "bytesTotal", "createdAt", "updatedAt", "checksumMd5", "expectedChecksum", "bytesPerSecond") SELECT "id", "kind", "name", "description", "osCategory", "osName", "osVersion", "osBits", "hypervisor", "format", "isoUsage", "scope", "status", "phase", "statusReason", "ownerId", "departmentId", "zoneId", "sizeBytes", "checksum", "sourceType", "sourceUrl", "sourcePath", "sourceName", "bytesDone", "bytesTotal", "createdAt", "updatedAt", "checksumMd5", "expectedChecksum", "bytesPerSecond" FROM "images"',
    );
    await queryRunner.query('DROP TABLE "images"');
    await queryRunner.query('ALTER TABLE "temporary_images" RENAME TO "images"');
    await queryRunner.query('CREATE INDEX "IDX_images_zone" ON "images" ("zoneId") ');
    await queryRunner.query('CREATE INDEX "IDX_images_dept_scope" ON "images" ("departmentId", "scope") ');
    await queryRunner.query('CREATE INDEX "IDX_images_owner_scope" ON "images" ("ownerId", "scope") ');
    await queryRunner.query('CREATE INDEX "IDX_images_size" ON "images" ("sizeBytes", "id") ');
    await queryRunner.query('CREATE INDEX "IDX_images_created" ON "images" ("createdAt", "id") ');
    await queryRunner.query('CREATE INDEX "IDX_images_name" ON "images" ("name", "id") ');
    await queryRunner.query('CREATE INDEX "IDX_images_scope_created" ON "images" ("scope", "createdAt", "id") ');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "IDX_images_scope_created"');
    await queryRunner.query('DROP INDEX "IDX_images_name"');
    await queryRunner.query('DROP INDEX "IDX_images_created"');
    await queryRunner.query('DROP INDEX "IDX_images_size"');
    await queryRunner.query('DROP INDEX "IDX_images_owner_scope"');
    await queryRunner.query('DROP INDEX "IDX_images_dept_scope"');
    await queryRunner.query('DROP INDEX "IDX_images_zone"');
    await queryRunner.query('ALTER TABLE "images" RENAME TO "temporary_images"');
    await queryRunner.query(
      "CREATE TABLE \"images\" (\"id\" varchar(36) PRIMARY KEY NOT NULL, \"kind\" varchar CHECK( \"kind\" IN ('IMAGE','ISO') ) NOT NULL, \"name\" varchar(255) NOT NULL, \"description\" varchar(2000) NOT NULL DEFAULT (''), \"osCategory\" varchar CHECK( \"osCategory\" IN ('CENTOS','UBUNTU','DEBIAN','REDHAT','ROCKY','SUSE','OPENEULER','KYLIN','UOS','OTHER_LINUX','WINDOWS_VIRTIO','WINDOWS_IDE','OTHER') ) NOT NULL, \"osName\" varchar(128) NOT NULL DEFAULT (''), \"osVersion\" varchar(64) NOT NULL DEFAULT (''), \"osBits\" smallint NOT NULL DEFAULT (64), \"hypervisor\" varchar CHECK( \"hypervisor\" IN ('KVM','VMWARE','XEN','HYPERV') ) NOT NULL, \"format\" varchar CHECK( \"format\" IN ('qcow2','raw','vmdk','vhd','vhdx','iso') ) NOT NULL, \"isoUsage\" varchar CHECK( \"isoUsage\" IN ('OS','TOOL') ), \"scope\" varchar CHECK( \"scope\" IN ('FEATURED','PUBLIC','PRIVATE') ) NOT NULL, \"status\" varchar CHECK( \"status\" IN ('ACTIVE','INACTIVE') ) NOT NULL, \"phase\" varchar CHECK( \"phase\" IN ('QUEUED','IMPORTING','VERIFYING','READY','FAILED','DISABLED') ) NOT NULL, \"statusReason\" varchar(1000), \"ownerId\" varchar(64) NOT NULL, \"departmentId\" varchar(64) NOT NULL, \"zoneId\" varchar(36) NOT NULL, \"sizeBytes\" bigint, \"checksum\" varchar(64), \"sourceType\" varchar CHECK( \"sourceType\" IN ('URL','FILE','UPLOAD') ) NOT NULL, \"sourceUrl\" varchar(2048), \"sourcePath\" varchar(1024), \"sourceName\" varchar(32), \"bytesDone\" bigint NOT NULL DEFAULT (0), \"bytesTotal\" bigint, \"createdAt\" datetime NOT NULL DEFAULT (datetime('now')), \"updatedAt\" datetime NOT NULL DEFAULT (datetime('now')), \"checksumMd5\" varchar(32), \"expectedChecksum\" varchar(71), \"bytesPerSecond\" bigint)",
    );
    await queryRunner.query(
      'INSERT INTO "images"("id", "kind", "name", "description", "osCategory", "osName", "osVersion", "osBits", "hypervisor", "format", "isoUsage", "scope", "status", "phase", "statusReason", "ownerId", "departmentId", "zoneId", "sizeBytes", "checksum", "sourceType", "sourceUrl", "sourcePath", "sourceName", "bytesDone", "bytesTotal", "createdAt", "updatedAt", "checksumMd5", "expectedChecksum", "bytesPerSecond") SELECT "id", "kind", "name", "description", "osCategory", "osName", "osVersion", "osBits", "hypervisor", "format", "isoUsage", "scope", "status", "phase", "statusReason", "ownerId", "departmentId", "zoneId", "sizeBytes", "checksum", "sourceType", "sourceUrl", "sourcePath", "sourceName", "bytesDone", "bytesTotal", "createdAt", "updatedAt", "checksumMd5", "expectedChecksum", "bytesPerSecond" FROM "temporary_images"',
    );
    await queryRunner.query('DROP TABLE "temporary_images"');
    await queryRunner.query('CREATE INDEX "IDX_images_owner_scope" ON "images" ("ownerId", "scope") ');
    await queryRunner.query('CREATE INDEX "IDX_images_dept_scope" ON "images" ("departmentId", "scope") ');
    await queryRunner.query('CREATE INDEX "IDX_images_zone" ON "images" ("zoneId") ');
    await queryRunner.query('CREATE INDEX "IDX_images_created" ON "images" ("createdAt") ');
    await queryRunner.query('CREATE INDEX "IDX_images_size" ON "images" ("sizeBytes") ');
    await queryRunner.query('CREATE INDEX "IDX_images_scope_created" ON "images" ("scope", "createdAt") ');
    await queryRunner.query('CREATE INDEX "IDX_images_name" ON "images" ("name") ');
  }
}
