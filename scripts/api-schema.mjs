#!/usr/bin/env node
/**
 * Writes test/support/api-schema.d.ts, the types of the typed client the e2e suites use (test/support/api-client.ts),
 * from openapi.yaml with openapi-typescript: a contract that drifts from what the suites send and read fails tsc.
 *   node scripts/api-schema.mjs           write it
 *   node scripts/api-schema.mjs --check   exit 1 when it is stale
 * `npm run openapi` runs it after writing openapi.yaml; `npm run openapi:check` checks it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const file = join(root, 'test', 'support', 'api-schema.d.ts');

const { default: openapiTS, astToString } = await import('openapi-typescript');
// defaultNonNullable off: a request field with a default (osBits, scope) stays optional, as the document says
const ast = await openapiTS(new URL(`file://${join(root, 'openapi.yaml')}`), { defaultNonNullable: false });
const text = `// Generated from openapi.yaml by scripts/api-schema.mjs (openapi-typescript): do not edit.\n${astToString(ast)}`;
if (process.argv.includes('--check')) {
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
    console.error('test/support/api-schema.d.ts is stale: run `npm run openapi` and commit it');
    process.exit(1);
  }
  console.log('test/support/api-schema.d.ts is up to date');
} else if (!existsSync(file) || readFileSync(file, 'utf8') !== text) {
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
} else console.log('test/support/api-schema.d.ts: up to date');
