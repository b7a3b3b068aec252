import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CHECKED_MARKER, compareWithContract, ContractDoc, describeMismatches, readRecords } from './contract-check';
import { CONTRACT_DIR_ENV, CONTRACT_OWN_DIR_ENV } from './contract-recorder';

/**
 * When the contract test did not run (a few files run alone), says which recorded answers openapi.yaml does
 * not declare, as a warning: the contract test is what fails on them. Then removes this run's directory of
 * recorded answers (unless it was given from outside, to be kept).
 */
export default function globalTeardown(): void {
  const dir = process.env[CONTRACT_DIR_ENV];
  if (dir && existsSync(dir) && !existsSync(join(dir, CHECKED_MARKER))) {
    try {
      const doc = parse(readFileSync(join(__dirname, '..', '..', 'openapi.yaml'), 'utf8')) as ContractDoc;
      const mismatches = compareWithContract(doc, readRecords(dir));
      if (mismatches.length) {
        console.warn(
          `\nopenapi.yaml does not declare these answers (test/integration/contract-coverage.int-spec.ts fails on them):\n${describeMismatches(mismatches)}\n`,
        );
      }
    } catch (e) {
      console.warn(`contract check skipped: ${(e as Error).message}`);
    }
  }
  const own = process.env[CONTRACT_OWN_DIR_ENV];
  if (own) rmSync(own, { recursive: true, force: true });
}
