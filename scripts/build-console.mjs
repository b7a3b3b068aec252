#!/usr/bin/env node
/**
 * Builds the web console (console/) into console/dist, served by the service at /console.
 *   node scripts/build-console.mjs           build unless console/dist is stamped with the current sources' hash
 *   node scripts/build-console.mjs --force   build anyway
 *   node scripts/build-console.mjs --check-client   exit 1 when console/src/api/schema.d.ts is stale
 * Steps: the typed API client's types from openapi.yaml (scripts/api-schema.mjs, the one copy the e2e suites' client
 * imports too), a type check of the page, then
 * Vite's production build (hashed file names under assets/), then each text file compressed once (name.br,
 * name.gz beside it: the service sends them with Content-Encoding, no compression per request). The stamp (console/dist/build-hash.txt) is a
 * sha256 over openapi.yaml, package-lock.json and every file of console/ but dist/, so `npm start` skips all
 * of it when nothing changed.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib, gzip } from 'node:zlib';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiSchemaIsCurrent, generateApiSchema, schemaFile } from './api-schema.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const consoleRoot = join(root, 'console');
const out = join(consoleRoot, 'dist');
const stampFile = join(out, 'build-hash.txt');

/** Writes file.br (brotli, best) and file.gz (gzip -9) beside every .js/.css/.html file of dist over 1 KiB. */
async function precompress() {
  const br = promisify(brotliCompress);
  const gz = promisify(gzip);
  const files = [join(out, 'index.html'), ...readdirSync(join(out, 'assets')).map((f) => join(out, 'assets', f))].filter(
    (f) => /\.(js|css|html)$/.test(f) && statSync(f).size > 1024,
  );
  await Promise.all(
    files.map(async (f) => {
      const data = readFileSync(f);
      const [b, g] = await Promise.all([
        br(data, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: data.length } }),
        gz(data, { level: 9 }),
      ]);
      writeFileSync(`${f}.br`, b);
      writeFileSync(`${f}.gz`, g);
    }),
  );
}

function sourceHash() {
  const files = [join(root, 'openapi.yaml'), join(root, 'package-lock.json')];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (p !== out && e.name !== 'node_modules') walk(p);
      } else files.push(p);
    }
  };
  walk(consoleRoot);
  const h = createHash('sha256');
  for (const f of files) h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

async function main() {
  const args = process.argv.slice(2);
  const types = await generateApiSchema();
  if (args.includes('--check-client')) {
    if (!apiSchemaIsCurrent(types)) {
      console.error('console/src/api/schema.d.ts is stale: run `npm run build:console` and commit it');
      process.exit(1);
    }
    console.log('console API client types are up to date');
    return;
  }
  if (!apiSchemaIsCurrent(types)) writeFileSync(schemaFile, types);
  const hash = sourceHash();
  if (!args.includes('--force') && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === hash) {
    console.log('console: up to date (console/dist)');
    return;
  }
  const t0 = Date.now();
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', join(consoleRoot, 'tsconfig.json')], {
    stdio: 'inherit',
  });
  // always a production build: jest runs this with NODE_ENV=test, which would make Vite emit React's dev JSX runtime
  process.env.NODE_ENV = 'production';
  const { build } = await import('vite');
  await build({ configFile: join(consoleRoot, 'vite.config.mjs'), mode: 'production', logLevel: 'warn' });
  await precompress();
  writeFileSync(stampFile, `${hash}\n`);
  const assets = readdirSync(join(out, 'assets'));
  const sum = (ext) => assets.filter((f) => f.endsWith(ext)).reduce((n, f) => n + statSync(join(out, 'assets', f)).size, 0);
  const plain = assets.filter((f) => !/\.(br|gz)$/.test(f)).reduce((n, f) => n + statSync(join(out, 'assets', f)).size, 0);
  console.log(
    `console: built into console/dist in ${((Date.now() - t0) / 1000).toFixed(1)} s (${(plain / 1024).toFixed(0)} KiB of assets, ${(sum('.br') / 1024).toFixed(0)} KiB brotli, ${(sum('.gz') / 1024).toFixed(0)} KiB gzip)`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
