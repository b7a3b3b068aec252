import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/service-process';

/** The console's typed API client (console/src/api/schema.d.ts) is generated from openapi.yaml and committed. */
it('the console API client types match openapi.yaml', () => {
  const out = execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-console.mjs'), '--check-client'], { cwd: REPO_ROOT, encoding: 'utf8' });
  expect(out).toContain('up to date');
});
