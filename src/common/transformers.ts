import type { ValueTransformer } from 'typeorm';

/** mysql2 returns BIGINT as a string, better-sqlite3 as a number: normalise to number (exact below 2^53). */
export const bigintAsNumber: ValueTransformer = {
  to: (v?: number | null) => v,
  from: (v: string | number | null | undefined) => (v === null || v === undefined ? v : Number(v)),
};
