import { MigrationInterface, QueryRunner } from 'typeorm';

export class ImagesPhaseIndex1796228925532 implements MigrationInterface {
  name = 'ImagesPhaseIndex1796228925532';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('CREATE INDEX "IDX_images_phase" ON "images" ("phase") ');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "IDX_images_phase"');
  }
}
