#!/usr/bin/env node
/**
 * Writes console/src/api/schema.d.ts, the one generated copy of the API's types, from openapi.yaml with
 * openapi-typescript. Both typed clients import it: the console's (console/src/api/client.ts) and the e2e suites'
 * (test/support/api-client.ts), so a contract that drifts from what either sends and reads fails tsc.
 *   node scripts/api-schema.mjs           write it
 *   node scripts/api-schema.mjs --check   exit 1 when it is stale
 * `npm run openapi` runs it after writing openapi.yaml; `npm run openapi:check` checks it; scripts/build-console.mjs
 * regenerates it with generateApiSchema() before it type-checks and builds the page.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const schemaFile = join(root, 'console', 'src', 'api', 'schema.d.ts');
const shown = 'console/src/api/schema.d.ts';

/** The text schema.d.ts must hold for the current openapi.yaml. */
export async function generateApiSchema() {
  const { default: openapiTS, astToString } = await import('openapi-typescript');
  // defaultNonNullable off: a request field with a default (osBits, scope) stays optional, as the document says
  const ast = await openapiTS(new URL(`file://${join(root, 'openapi.yaml')}`), { defaultNonNullable: false });
  return `// Generated from openapi.yaml by scripts/api-schema.mjs (openapi-typescript): do not edit.\n${astToString(ast)}`;
}

/** True when schema.d.ts already holds `text`. */
export function apiSchemaIsCurrent(text) {
  return existsSync(schemaFile) && readFileSync(schemaFile, 'utf8') === text;
}

async function main() {
  const text = await generateApiSchema();
  if (process.argv.includes('--check')) {
    if (!apiSchemaIsCurrent(text)) {
      console.error(`${shown} is stale: run \`npm run openapi\` and commit it`);
      process.exit(1);
    }
    console.log(`${shown} is up to date`);
  } else if (!apiSchemaIsCurrent(text)) {
    writeFileSync(schemaFile, text);
    console.log(`wrote ${schemaFile}`);
  } else console.log(`${shown}: up to date`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
