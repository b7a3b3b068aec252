/**
 * A single-range `Range` header (RFC 9110 section 14) against a file of `size` bytes.
 *   none           no header, another unit, several ranges, or a malformed one: answer the whole file (200)
 *   range          bytes start..end, inclusive, within the file (206)
 *   unsatisfiable  the range starts at or past the end (416 with Content-Range: bytes * / size)
 */
export type RangeRequest = { kind: 'none' } | { kind: 'range'; start: number; end: number } | { kind: 'unsatisfiable' };

const NONE: RangeRequest = { kind: 'none' };
const UNSATISFIABLE: RangeRequest = { kind: 'unsatisfiable' };

export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (!header) return NONE;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  // several ranges (a comma) or anything else: a server may ignore Range, and does here
  if (!m || (m[1] === '' && m[2] === '')) return NONE;
  const first = m[1] === '' ? undefined : Number(m[1]);
  const last = m[2] === '' ? undefined : Number(m[2]);
  if ((first !== undefined && !Number.isSafeInteger(first)) || (last !== undefined && !Number.isSafeInteger(last))) return NONE;
  if (first === undefined) {
    // suffix: the last `last` bytes
    if (last === 0 || size === 0) return UNSATISFIABLE;
    return { kind: 'range', start: Math.max(0, size - last!), end: size - 1 };
  }
  if (last !== undefined && last < first) return NONE;
  if (first >= size) return UNSATISFIABLE;
  return { kind: 'range', start: first, end: Math.min(last ?? size - 1, size - 1) };
}
