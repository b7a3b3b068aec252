import { rmSync } from 'node:fs';
import { CONTRACT_OWN_DIR_ENV } from './contract-recorder';

/** Removes this run's directory of recorded answers (unless it was given from outside, to be kept). */
export default function globalTeardown(): void {
  const dir = process.env[CONTRACT_OWN_DIR_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
}
