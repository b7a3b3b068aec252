/**
 * Writes asyncapi.yaml (beside openapi.yaml) from the event catalogue.
 *   node dist/scripts/asyncapi.js           write asyncapi.yaml
 *   node dist/scripts/asyncapi.js --check   exit 1 when the committed asyncapi.yaml is stale
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { buildAsyncApi } from '../src/events/asyncapi';
import { writeOrCheck } from './generated-file';

/** the repository root, from scripts/ (jest) or dist/scripts/ (built) */
const root = ((): string => {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

export function renderAsyncApi(): string {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  return stringify(buildAsyncApi(version), { aliasDuplicateObjects: false, lineWidth: 0 });
}

function main(): void {
  const file = join(root, 'asyncapi.yaml');
  const text = renderAsyncApi();
  writeOrCheck(file, text, 'npm run asyncapi');
}

if (require.main === module) main();
