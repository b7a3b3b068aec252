/**
 * The deepest JSON body the service accepts. Request bodies nest three or four levels; past a few
 * thousand, class-transformer and class-validator recurse until the stack overflows (a 500 on every
 * JSON route), so the depth is checked on the raw bytes before anything parses or walks them.
 */
export const MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * The nesting depth of a JSON text (objects and arrays), read byte by byte without parsing, so it runs
 * in constant stack on any input. Brackets inside strings do not count. Malformed text gets some
 * number; JSON.parse reports the malformation afterwards.
 */
export function jsonDepth(body: Uint8Array, stopAbove = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
  }
  return max;
}

/** What body-parser raises (through `verify`) for a body nested too deeply; the error filter renders it. */
export class JsonTooDeepError extends Error {
  readonly status = 400;
  readonly type = 'entity.too.deep';
  constructor(readonly maxDepth: number) {
    super(`The request body is nested deeper than ${maxDepth} levels`);
  }
}

/** body-parser's `verify` hook: refuses a body nested deeper than MAX_JSON_DEPTH before JSON.parse runs. */
export function verifyJsonDepth(_req: unknown, _res: unknown, body: Buffer, encoding: string | null): void {
  // UTF-16/32 bodies (which body-parser accepts) are measured on their UTF-8 form
  const bytes = !encoding || /^utf-?8$/i.test(encoding) ? body : Buffer.from(decode(body, encoding), 'utf8');
  if (jsonDepth(bytes, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new JsonTooDeepError(MAX_JSON_DEPTH);
}

function decode(body: Buffer, encoding: string): string {
  try {
    return new TextDecoder(encoding).decode(body);
  } catch {
    return body.toString('utf8'); // an encoding TextDecoder lacks (utf-32): body-parser refuses it or fails to parse it
  }
}
