import { FileSourceError } from './file-source.errors';

/** Longest path accepted, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 1024;
/** Longest name (one path segment) accepted, in UTF-8 bytes (what SMB, ext4 and most file systems allow). */
export const MAX_NAME_BYTES = 255;

/** Why a path was refused (`details.reason` of FILE_PATH_INVALID). */
export type PathProblem =
  | 'NOT_A_STRING'
  | 'PATH_TOO_LONG'
  | 'NAME_TOO_LONG'
  | 'ABSOLUTE'
  | 'BACKSLASH'
  | 'DOT_SEGMENT'
  | 'EMPTY_SEGMENT'
  | 'CONTROL_CHARACTER'
  | 'RESERVED_CHARACTER'
  | 'EDGE_SPACE_OR_DOT'
  | 'INVALID_UNICODE';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Characters SMB (and Windows) never allow in a name; `*` and `?` are also smbclient wildcards. */
const RESERVED = /["*:<>?|]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const refuse = (problem: PathProblem, message: string, input: unknown): never => {
  throw new FileSourceError('FILE_PATH_INVALID', message, { details: { reason: problem, path: typeof input === 'string' ? input.slice(0, 200) : undefined } });
};

/**
 * The one path normaliser every file source uses. Paths are relative to the source's root, `/`-separated:
 * `isos/CentOS 7.iso`. The root itself is `''` (or `/`-less empty input). Refused (FILE_PATH_INVALID, with the
 * reason in details): absolute paths, backslashes, `.` and `..` segments, empty segments (`a//b`), control
 * characters (NUL included), the characters SMB forbids (`" * : < > ? |`), names starting or ending with a space
 * or ending with a dot (Windows strips those, so two names would meet), lone UTF-16 surrogates, names over 255
 * and paths over 1024 UTF-8 bytes. One trailing `/` is accepted and dropped. Nothing is rewritten otherwise
 * (no case folding, no Unicode normalisation): the name must match the file's byte for byte.
 *
 * Confinement needs more than this for a directory source (symlinks): see LocalDirFileSource.
 * @throws FileSourceError FILE_PATH_INVALID
 */
export function normalisePath(input: unknown): string {
  if (typeof input !== 'string') return refuse('NOT_A_STRING', 'The path must be a string', input);
  if (Buffer.byteLength(input, 'utf8') > MAX_PATH_BYTES) refuse('PATH_TOO_LONG', `The path is longer than ${MAX_PATH_BYTES} bytes`, input);
  if (LONE_SURROGATE.test(input)) refuse('INVALID_UNICODE', 'The path is not valid Unicode', input);
  if (CONTROL.test(input)) refuse('CONTROL_CHARACTER', 'The path contains a control character', input);
  if (input.includes('\\')) refuse('BACKSLASH', 'Use "/" to separate folders, not "\\"', input);
  if (input.startsWith('/')) refuse('ABSOLUTE', 'The path must be relative to the file source (no leading "/")', input);
  const trimmed = input.endsWith('/') ? input.slice(0, -1) : input;
  if (trimmed === '') return '';
  for (const name of trimmed.split('/')) {
    if (name === '') refuse('EMPTY_SEGMENT', 'The path has an empty folder name ("//")', input);
    if (name === '.' || name === '..') refuse('DOT_SEGMENT', `"${name}" is not allowed in a path`, input);
    if (RESERVED.test(name)) refuse('RESERVED_CHARACTER', `The name "${name}" contains one of " * : < > ? |`, input);
    if (/^\s|\s$|\.$/.test(name)) refuse('EDGE_SPACE_OR_DOT', `The name "${name}" starts or ends with a space, or ends with a dot`, input);
    if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) refuse('NAME_TOO_LONG', `A name is longer than ${MAX_NAME_BYTES} bytes`, input);
  }
  return trimmed;
}

/** `a/b` + `c` -> `a/b/c`; `''` + `c` -> `c`. */
export const joinPath = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);

/** The last segment of a normalised path (`''` for the root). */
export const baseName = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/** Whether a name read from a source (a directory entry) would pass `normalisePath` as one segment. */
export function isAcceptableName(name: string): boolean {
  try {
    return name !== '' && !name.includes('/') && normalisePath(name) === name;
  } catch {
    return false;
  }
}
