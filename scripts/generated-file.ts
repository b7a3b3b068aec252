import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Writes a generated document (openapi.yaml, asyncapi.yaml), or with `--check` on the command line fails
 * (exit 1) when the committed file differs from what the code generates now.
 */
export function writeOrCheck(file: string, text: string, command: string): void {
  const name = basename(file);
  if (process.argv.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(file, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (committed !== text) {
      console.error(`${name} is stale: run \`${command}\` and commit it`);
      process.exit(1);
    }
    console.log(`${name} is up to date`);
    return;
  }
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
