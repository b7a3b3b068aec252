import { MigrationInterface, QueryRunner } from 'typeorm';

export class Init1795713934471 implements MigrationInterface {
  name = 'Init1795713934471';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      "CREATE TABLE `zones` (`id` varchar(36) NOT NULL, `name` varchar(64) NOT NULL, `hypervisor` enum ('KVM', 'VMWARE', 'XEN', 'HYPERV') NOT NULL, `description` varchar(500) NOT NULL DEFAULT '', `createdAt` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updatedAt` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), UNIQUE INDEX `UQ_zones_name` (`name`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query(
      "CREATE TABLE `images` (`id` varchar(36) NOT NULL, `kind` enum ('IMAGE', 'ISO') NOT NULL, `name` varchar(255) NOT NULL, `description` varchar(2000) NOT NULL DEFAULT '', `osCategory` enum ('CENTOS', 'UBUNTU', 'DEBIAN', 'REDHAT', 'ROCKY', 'SUSE', 'OPENEULER', 'KYLIN', 'UOS', 'OTHER_LINUX', 'WINDOWS_VIRTIO', 'WINDOWS_IDE', 'OTHER') NOT NULL, `osName` varchar(128) NOT NULL DEFAULT '', `osVersion` varchar(64) NOT NULL DEFAULT '', `osBits` smallint NOT NULL DEFAULT '64', `hypervisor` enum ('KVM', 'VMWARE', 'XEN', 'HYPERV') NOT NULL, `format` enum ('qcow2', 'raw', 'vmdk', 'vhd', 'vhdx', 'iso') NOT NULL, `isoUsage` enum ('OS', 'TOOL') NULL, `scope` enum ('FEATURED', 'PUBLIC', 'PRIVATE') NOT NULL, `status` enum ('ACTIVE', 'INACTIVE') NOT NULL, `phase` enum ('QUEUED', 'IMPORTING', 'VERIFYING', 'READY', 'FAILED', 'DISABLED') NOT NULL, `statusReason` varchar(1000) NULL, `ownerId` varchar(64) NOT NULL, `departmentId` varchar(64) NOT NULL, `zoneId` varchar(36) NOT NULL, `sizeBytes` bigint NULL, `checksum` varchar(64) NULL, `sourceType` enum ('URL', 'FILE', 'UPLOAD') NOT NULL, `sourceUrl` varchar(2048) NULL, `sourcePath` varchar(1024) NULL, `sourceName` varchar(32) NULL, `bytesDone` bigint NOT NULL DEFAULT '0', `bytesTotal` bigint NULL, `createdAt` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updatedAt` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), INDEX `IDX_images_name` (`name`), INDEX `IDX_images_zone` (`zoneId`), INDEX `IDX_images_dept_scope` (`departmentId`, `scope`), INDEX `IDX_images_owner_scope` (`ownerId`, `scope`), INDEX `IDX_images_scope_created` (`scope`, `createdAt`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query(
      'CREATE TABLE `image_tags` (`imageId` varchar(36) NOT NULL, `tag` varchar(64) NOT NULL, INDEX `IDX_image_tags_tag` (`tag`, `imageId`), PRIMARY KEY (`imageId`, `tag`)) ENGINE=InnoDB',
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX `IDX_image_tags_tag` ON `image_tags`');
    await queryRunner.query('DROP TABLE `image_tags`');
    await queryRunner.query('DROP INDEX `IDX_images_scope_created` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_owner_scope` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_dept_scope` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_zone` ON `images`');
    await queryRunner.query('DROP INDEX `IDX_images_name` ON `images`');
    await queryRunner.query('DROP TABLE `images`');
    await queryRunner.query('DROP INDEX `UQ_zones_name` ON `zones`');
    await queryRunner.query('DROP TABLE `zones`');
  }
}
