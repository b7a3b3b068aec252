import { MigrationInterface, QueryRunner } from 'typeorm';

export class Events1796229474846 implements MigrationInterface {
  name = 'Events1796229474846';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      'CREATE TABLE "event_outbox" ("position" bigint PRIMARY KEY NOT NULL, "id" varchar(36) NOT NULL, "type" varchar(64) NOT NULL, "version" integer NOT NULL, "time" bigint NOT NULL, "subject" varchar(100) NOT NULL, "sequence" bigint NOT NULL, "imageId" varchar(36), "scope" varchar(16), "ownerId" varchar(64), "departmentId" varchar(64), "actor" text NOT NULL, "correlationId" varchar(128), "payload" text NOT NULL, "publishedAt" bigint, "claimedBy" varchar(64), "claimedUntil" bigint)',
    );
    await queryRunner.query('CREATE INDEX "IDX_event_outbox_published_position" ON "event_outbox" ("publishedAt", "position") ');
    await queryRunner.query('CREATE INDEX "IDX_event_outbox_image_position" ON "event_outbox" ("imageId", "position") ');
    await queryRunner.query('CREATE UNIQUE INDEX "UQ_event_outbox_subject_sequence" ON "event_outbox" ("subject", "sequence") ');
    await queryRunner.query('CREATE UNIQUE INDEX "UQ_event_outbox_id" ON "event_outbox" ("id") ');
    await queryRunner.query('CREATE TABLE "event_counters" ("name" varchar(100) PRIMARY KEY NOT NULL, "value" bigint NOT NULL)');
    // the cursor counter exists from the start: its row lock orders every event write (EventsRepository)
    await queryRunner.query('INSERT INTO "event_counters" ("name", "value") VALUES (\'#position\', 0)');
    await queryRunner.query('CREATE TABLE "event_relay_lease" ("name" varchar(32) PRIMARY KEY NOT NULL, "holder" varchar(100), "until" bigint NOT NULL)');
    // the relay leader lease row (EventRelay)
    await queryRunner.query('INSERT INTO "event_relay_lease" ("name", "holder", "until") VALUES (\'relay\', NULL, 0)');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE "event_relay_lease"');
    await queryRunner.query('DROP TABLE "event_counters"');
    await queryRunner.query('DROP INDEX "UQ_event_outbox_id"');
    await queryRunner.query('DROP INDEX "UQ_event_outbox_subject_sequence"');
    await queryRunner.query('DROP INDEX "IDX_event_outbox_image_position"');
    await queryRunner.query('DROP INDEX "IDX_event_outbox_published_position"');
    await queryRunner.query('DROP TABLE "event_outbox"');
  }
}
