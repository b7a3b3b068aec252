import { MigrationInterface, QueryRunner } from 'typeorm';

export class Events1796229474846 implements MigrationInterface {
  name = 'Events1796229474846';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      'CREATE TABLE `event_outbox` (`position` bigint NOT NULL, `id` varchar(36) NOT NULL, `type` varchar(64) NOT NULL, `version` int NOT NULL, `time` bigint NOT NULL, `subject` varchar(100) NOT NULL, `sequence` bigint NOT NULL, `imageId` varchar(36) NULL, `scope` varchar(16) NULL, `ownerId` varchar(64) NULL, `departmentId` varchar(64) NULL, `actor` text NOT NULL, `correlationId` varchar(128) NULL, `payload` text NOT NULL, `publishedAt` bigint NULL, `claimedBy` varchar(64) NULL, `claimedUntil` bigint NULL, INDEX `IDX_event_outbox_published_position` (`publishedAt`, `position`), INDEX `IDX_event_outbox_image_position` (`imageId`, `position`), UNIQUE INDEX `UQ_event_outbox_subject_sequence` (`subject`, `sequence`), UNIQUE INDEX `UQ_event_outbox_id` (`id`), PRIMARY KEY (`position`)) ENGINE=InnoDB',
    );
    await queryRunner.query('CREATE TABLE `event_counters` (`name` varchar(100) NOT NULL, `value` bigint NOT NULL, PRIMARY KEY (`name`)) ENGINE=InnoDB');
    // the cursor counter exists from the start: its row lock orders every event write (EventsRepository)
    await queryRunner.query("INSERT INTO `event_counters` (`name`, `value`) VALUES ('#position', 0)");
    await queryRunner.query(
      'CREATE TABLE `event_relay_lease` (`name` varchar(32) NOT NULL, `holder` varchar(100) NULL, `until` bigint NOT NULL, PRIMARY KEY (`name`)) ENGINE=InnoDB',
    );
    // the relay leader lease row (EventRelay)
    await queryRunner.query("INSERT INTO `event_relay_lease` (`name`, `holder`, `until`) VALUES ('relay', NULL, 0)");
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE `event_relay_lease`');
    await queryRunner.query('DROP TABLE `event_counters`');
    await queryRunner.query('DROP INDEX `UQ_event_outbox_id` ON `event_outbox`');
    await queryRunner.query('DROP INDEX `UQ_event_outbox_subject_sequence` ON `event_outbox`');
    await queryRunner.query('DROP INDEX `IDX_event_outbox_image_position` ON `event_outbox`');
    await queryRunner.query('DROP INDEX `IDX_event_outbox_published_position` ON `event_outbox`');
    await queryRunner.query('DROP TABLE `event_outbox`');
  }
}
