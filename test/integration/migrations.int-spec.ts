import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureBuilt } from '../support/build';

const root = join(__dirname, '..', '..');

/** The committed migrations (both dialects) must produce exactly the schema the entities describe. */
describe('migrations', () => {
  it('match the entities on SQLite and MariaDB (run `npm run migration:generate -- <Name>` when this fails)', () => {
    ensureBuilt();
    const out = execFileSync('node', ['dist/scripts/migration-generate.js', '--check'], { cwd: root, encoding: 'utf8' });
    expect(out).toContain('sqlite: no changes in database schema were found');
    expect(out).toContain('mariadb: no changes in database schema were found');
  }, 240_000);
});
