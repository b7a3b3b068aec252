import { MigrationInterface, QueryRunner } from 'typeorm';

export class Quota1795714701676 implements MigrationInterface {
  name = 'Quota1795714701676';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      "CREATE TABLE `quota_ledger` (`departmentId` varchar(64) NOT NULL, `resource` enum ('IMAGE_COUNT', 'IMAGE_BYTES', 'VM_COUNT', 'VCPU', 'MEMORY_BYTES', 'DISK_BYTES') NOT NULL, `limitAmount` bigint NULL, `used` bigint NOT NULL DEFAULT '0', `reserved` bigint NOT NULL DEFAULT '0', `version` bigint NOT NULL DEFAULT '0', `updatedAt` datetime(3) NOT NULL, PRIMARY KEY (`departmentId`, `resource`)) ENGINE=InnoDB",
    );
    await queryRunner.query(
      "CREATE TABLE `quota_reservations` (`id` varchar(36) NOT NULL, `callerId` varchar(64) NOT NULL, `idemKey` varchar(128) NOT NULL, `fingerprint` varchar(64) NOT NULL, `departmentId` varchar(64) NOT NULL, `subjectId` varchar(64) NULL, `status` enum ('PENDING', 'COMMITTED', 'RELEASED', 'EXPIRED', 'REFUNDED') NOT NULL, `version` bigint NOT NULL DEFAULT '0', `ttlSeconds` int NOT NULL, `expiresAt` datetime(3) NOT NULL, `deletingAt` datetime(3) NULL, `createdAt` datetime(3) NOT NULL, `updatedAt` datetime(3) NOT NULL, INDEX `IDX_quota_reservations_deleting` (`deletingAt`), INDEX `IDX_quota_reservations_status_expires` (`status`, `expiresAt`), INDEX `IDX_quota_reservations_dept_status` (`departmentId`, `status`), UNIQUE INDEX `UQ_quota_reservations_key` (`callerId`, `idemKey`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query(
      "CREATE TABLE `quota_reservation_items` (`reservationId` varchar(36) NOT NULL, `resource` enum ('IMAGE_COUNT', 'IMAGE_BYTES', 'VM_COUNT', 'VCPU', 'MEMORY_BYTES', 'DISK_BYTES') NOT NULL, `reserved` bigint NOT NULL DEFAULT '0', `committed` bigint NOT NULL DEFAULT '0', `pending` tinyint NOT NULL DEFAULT 0, PRIMARY KEY (`reservationId`, `resource`)) ENGINE=InnoDB",
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE `quota_reservation_items`');
    await queryRunner.query('DROP INDEX `UQ_quota_reservations_key` ON `quota_reservations`');
    await queryRunner.query('DROP INDEX `IDX_quota_reservations_dept_status` ON `quota_reservations`');
    await queryRunner.query('DROP INDEX `IDX_quota_reservations_status_expires` ON `quota_reservations`');
    await queryRunner.query('DROP INDEX `IDX_quota_reservations_deleting` ON `quota_reservations`');
    await queryRunner.query('DROP TABLE `quota_reservations`');
    await queryRunner.query('DROP TABLE `quota_ledger`');
  }
}
