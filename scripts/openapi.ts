/**
 * Writes openapi.yaml from the code, without listening on a port or connecting to anything
 * (Nest preview mode builds the module graph without instantiating providers).
 *   node dist/scripts/openapi.js           write openapi.yaml
 *   node dist/scripts/openapi.js --check   exit 1 when the committed openapi.yaml is stale
 */
import 'reflect-metadata';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/app-config';
import { buildOpenApi } from '../src/openapi';
import { writeOrCheck } from './generated-file';

export async function renderOpenApi(): Promise<string> {
  const config = loadConfig({ DB_TYPE: 'sqlite', DB_PATH: ':memory:', AUTH_JWT_SECRET: 'x'.repeat(32), LOG_LEVEL: 'error' });
  const app = await createApp(config, { preview: true, logger: ['error'] });
  await app.init();
  const doc = buildOpenApi(app);
  await app.close();
  return stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

async function main(): Promise<void> {
  const file = join(__dirname, '..', '..', 'openapi.yaml');
  const text = await renderOpenApi();
  writeOrCheck(file, text, 'npm run openapi');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
