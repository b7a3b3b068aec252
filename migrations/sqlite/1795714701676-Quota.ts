import { MigrationInterface, QueryRunner } from 'typeorm';

export class Quota1795714701676 implements MigrationInterface {
  name = 'Quota1795714701676';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      'CREATE TABLE "quota_ledger" ("departmentId" varchar(64) NOT NULL, "resource" varchar CHECK( "resource" IN (\'IMAGE_COUNT\',\'IMAGE_BYTES\',\'VM_COUNT\',\'VCPU\',\'MEMORY_BYTES\',\'DISK_BYTES\') ) NOT NULL, "limitAmount" bigint, "used" bigint NOT NULL DEFAULT (0), "reserved" bigint NOT NULL DEFAULT (0), "version" bigint NOT NULL DEFAULT (0), "updatedAt" datetime(3) NOT NULL, PRIMARY KEY ("departmentId", "resource"))',
    );
    await queryRunner.query(
      'CREATE TABLE "quota_reservations" ("id" varchar(36) PRIMARY KEY NOT NULL, "callerId" varchar(64) NOT NULL, "idemKey" varchar(128) NOT NULL, "fingerprint" varchar(64) NOT NULL, "departmentId" varchar(64) NOT NULL, "subjectId" varchar(64), "status" varchar CHECK( "status" IN (\'PENDING\',\'COMMITTED\',\'RELEASED\',\'EXPIRED\',\'REFUNDED\') ) NOT NULL, "version" bigint NOT NULL DEFAULT (0), "ttlSeconds" integer NOT NULL, "expiresAt" datetime(3) NOT NULL, "deletingAt" datetime(3), "createdAt" datetime(3) NOT NULL, "updatedAt" datetime(3) NOT NULL)',
    );
    await queryRunner.query('CREATE INDEX "IDX_quota_reservations_deleting" ON "quota_reservations" ("deletingAt") ');
    await queryRunner.query('CREATE INDEX "IDX_quota_reservations_status_expires" ON "quota_reservations" ("status", "expiresAt") ');
    await queryRunner.query('CREATE INDEX "IDX_quota_reservations_dept_status" ON "quota_reservations" ("departmentId", "status") ');
    await queryRunner.query('CREATE UNIQUE INDEX "UQ_quota_reservations_key" ON "quota_reservations" ("callerId", "idemKey") ');
    await queryRunner.query(
      'CREATE TABLE "quota_reservation_items" ("reservationId" varchar(36) NOT NULL, "resource" varchar CHECK( "resource" IN (\'IMAGE_COUNT\',\'IMAGE_BYTES\',\'VM_COUNT\',\'VCPU\',\'MEMORY_BYTES\',\'DISK_BYTES\') ) NOT NULL, "reserved" bigint NOT NULL DEFAULT (0), "committed" bigint NOT NULL DEFAULT (0), "pending" boolean NOT NULL DEFAULT (0), PRIMARY KEY ("reservationId", "resource"))',
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE "quota_reservation_items"');
    await queryRunner.query('DROP INDEX "UQ_quota_reservations_key"');
    await queryRunner.query('DROP INDEX "IDX_quota_reservations_dept_status"');
    await queryRunner.query('DROP INDEX "IDX_quota_reservations_status_expires"');
    await queryRunner.query('DROP INDEX "IDX_quota_reservations_deleting"');
    await queryRunner.query('DROP TABLE "quota_reservations"');
    await queryRunner.query('DROP TABLE "quota_ledger"');
  }
}
