import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
/** What `nest build` compiles (tsconfig.build.json) and what changes how it compiles. */
const SOURCES = ['src', 'scripts', 'bench', 'migrations', join('test', 'support')];
const CONFIG = ['tsconfig.json', 'tsconfig.build.json', 'nest-cli.json', 'package.json'];
/** Written after a successful build by the tests; its time is the build's. */
const STAMP = join(ROOT, 'dist', '.test-build-stamp');

function newest(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs; // a deleted or renamed file changes its directory's time
  for (const name of readdirSync(path)) max = Math.max(max, newest(join(path, name)));
  return max;
}

/** True when dist was built by ensureBuilt after the last change of anything it is built from. */
export function distIsFresh(): boolean {
  const built = newest(STAMP);
  return built > 0 && Math.max(...SOURCES.map((d) => newest(join(ROOT, d))), ...CONFIG.map((f) => newest(join(ROOT, f)))) < built;
}

/**
 * `nest build` once per run rather than in every suite that starts the service as a process or reads dist:
 * the integration project's global setup calls it first, and each such suite calls it again (a no-op when
 * dist is fresh) so that it also works when run alone.
 */
export function ensureBuilt(): void {
  if (distIsFresh()) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules', '@nestjs', 'cli', 'bin', 'nest.js'), 'build'], { cwd: ROOT, stdio: 'pipe', timeout: 300_000 });
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}
