/**
 * mysql2 returns BIGINT as a string, better-sqlite3 as a number: normalise to number (exact below 2^53).
 * A column transformer (TypeORM's ValueTransformer, which it matches by shape: common/ imports no TypeORM).
 */
export const bigintAsNumber = {
  to: (v?: number | null) => v,
  from: (v: string | number | null | undefined) => (v === null || v === undefined ? v : Number(v)),
};
