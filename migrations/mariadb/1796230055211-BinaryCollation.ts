import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * MariaDB/MySQL compare text the way SQLite does: by code point (utf8mb4_bin), the database's default and
 * every table of the service. Under utf8mb4_general_ci user `Alice` was `alice`, department `D1` shared `d1`'s
 * quota, VM `VM-1` collided with `vm-1`, zone names were unique regardless of case, `café` equalled `cafe`
 * and names sorted differently than on SQLite. Case-insensitive searching is done explicitly, the same on
 * both databases (LOWER / hcm_lower, see CatalogRepository). Written by hand: TypeORM's schema diff does not
 * compare collations, so the entities (shared with SQLite, which has no such collation) carry none.
 */
export class BinaryCollation1796230055211 implements MigrationInterface {
  name = 'BinaryCollation1796230055211';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await this.convert(queryRunner, 'utf8mb4_bin');
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await this.convert(queryRunner, 'utf8mb4_general_ci');
  }

  private async convert(queryRunner: QueryRunner, collation: string): Promise<void> {
    const [{ db }] = (await queryRunner.query('SELECT DATABASE() AS db')) as Array<{ db: string }>;
    // tables created later (by later migrations) take the database's default
    await queryRunner.query(`ALTER DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE ${collation}`);
    const tables = (await queryRunner.query(
      "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> 'migrations' ORDER BY TABLE_NAME",
    )) as Array<{ name: string }>;
    for (const { name } of tables) await queryRunner.query(`ALTER TABLE \`${name}\` CONVERT TO CHARACTER SET utf8mb4 COLLATE ${collation}`);
  }
}
