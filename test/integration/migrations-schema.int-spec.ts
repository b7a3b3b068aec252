/**
 * The committed migrations build exactly the schema the entities declare, on both dialects: after they ran,
 * TypeORM's schema builder has nothing left to do. A column, an index or a type declared on an entity without
 * its migration (or a migration that drifts from the entity) fails here instead of on an operator's database.
 */
import { DataSource } from 'typeorm';
import { SHAPES, startApp, TestApp } from '../support/app';

describe.each(SHAPES)('migrations against the entities (%s)', (shape) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(shape, 'schema');
  });
  afterAll(() => t?.close());

  it('leaves nothing for the schema builder to change', async () => {
    const ds = t.app.get(DataSource);
    expect(await ds.showMigrations()).toBe(false);
    const pending = await ds.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((q) => q.query)).toEqual([]);
  });

  it('has the index the OS and hypervisor filters read in order', async () => {
    const ds = t.app.get(DataSource);
    const names =
      shape === 'sqlite'
        ? ((await ds.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'images'")) as Array<{ name: string }>).map((r) => r.name)
        : (
            (await ds.query(
              "SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'images'",
            )) as Array<{
              name: string;
            }>
          ).map((r) => r.name);
    expect(names).toContain('IDX_images_os_hv_created');
  });
});
