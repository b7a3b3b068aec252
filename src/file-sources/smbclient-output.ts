import { FileSourceError, FileSourceErrorCode } from './file-source.errors';

/**
 * Reading what smbclient prints (Samba 4.x, run with TZ=UTC so its times are UTC).
 *
 * `ls "dir\*"` prints one line per entry: `  <name padded to 30> <attributes, 7 wide> <size>  <asctime>`, e.g.
 *   `  CentOS 7.iso                        A 4781506560  Thu Nov 26 18:08:46 2026`
 * The name may hold spaces (and any other character but the ones SMB forbids); it is everything before the
 * last run of spaces that precedes the attribute letters, the size and the date.
 *
 * `allinfo "path"` prints `write_time:    <asctime> UTC`, `attributes: D (10)` and, for a file,
 * `stream: [::$DATA], <size> bytes`.
 *
 * `get "path" -` prints (with -E, on stderr) `getting file \path of size <n> as -` once the file is read.
 */

export interface SmbEntry {
  name: string;
  isDir: boolean;
  size: number;
  modifiedAt: Date;
}

export interface SmbInfo {
  isDir: boolean;
  /** undefined for a directory */
  size?: number;
  modifiedAt: Date;
}

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
const ASCTIME = String.raw`[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})`;
const LS_LINE = new RegExp(String.raw`^  (.+?) +([A-Z]{0,7}) +(\d+)  ${ASCTIME}$`);

function utc(mon: string, day: string, h: string, m: string, s: string, y: string): Date {
  return new Date(Date.UTC(Number(y), MONTHS[mon] ?? 0, Number(day), Number(h), Number(m), Number(s)));
}

/** The entries of an `ls` listing, without `.` and `..`; lines that are not entries are skipped. */
export function parseLs(output: string): SmbEntry[] {
  const out: SmbEntry[] = [];
  for (const line of output.split('\n')) {
    const m = LS_LINE.exec(line.replace(/\r$/, ''));
    if (!m) continue;
    const [, name, attrs, size, mon, day, h, mi, s, y] = m;
    if (name === '.' || name === '..') continue;
    out.push({ name, isDir: attrs.includes('D'), size: Number(size), modifiedAt: utc(mon, day, h, mi, s, y) });
  }
  return out;
}

/** What `allinfo` says of one path, or null when the output has no attributes line (an error instead). */
export function parseAllinfo(output: string): SmbInfo | null {
  const attrs = /^attributes:\s*([A-Z]*)\s*\(([0-9a-fA-F]+)\)/m.exec(output);
  const write = new RegExp(String.raw`^write_time:\s+${ASCTIME}`, 'm').exec(output);
  if (!attrs || !write) return null;
  const isDir = attrs[1].includes('D') || (parseInt(attrs[2], 16) & 0x10) !== 0;
  const stream = /^stream: \[::\$DATA\], (\d+) bytes/m.exec(output);
  const [, mon, day, h, mi, s, y] = write;
  return { isDir, size: stream ? Number(stream[1]) : isDir ? undefined : 0, modifiedAt: utc(mon, day, h, mi, s, y) };
}

/**
 * What `allinfo "path"` followed by `ls "path"` (one smbclient run) says of one path: the attributes and the
 * write time from allinfo, and a file's size from the `ls` line, because smbclient's allinfo prints the size of
 * the data stream in 32 bits (a file of 4 GiB + 7 bytes shows `7 bytes`; measured with Samba 4.17), while `ls`
 * and `get` print all 64. Null as parseAllinfo.
 */
export function parseStat(output: string, name: string): SmbInfo | null {
  const info = parseAllinfo(output);
  if (!info || info.isDir) return info;
  // the name as listed; on a share that ignores case it may be spelt otherwise than asked: then the one file listed
  const files = parseLs(output).filter((e) => !e.isDir);
  const listed = files.find((e) => e.name === name) ?? (files.length === 1 ? files[0] : undefined);
  return listed ? { ...info, size: listed.size } : info;
}

/** The size a finished `get` announced (`getting file \x of size 123 as -`), or undefined. */
export function parseGetSize(stderr: string): number | undefined {
  const m = /^getting file .* of size (\d+) as /m.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** NT status codes mapped to file-source codes (matched against the status token alone). */
const STATUS_CODES: Array<[RegExp, FileSourceErrorCode, string]> = [
  [
    /^NT_STATUS_(LOGON_FAILURE|WRONG_PASSWORD|ACCOUNT_DISABLED|ACCOUNT_LOCKED_OUT|ACCOUNT_RESTRICTION|PASSWORD_EXPIRED|PASSWORD_MUST_CHANGE|NO_SUCH_USER|INVALID_LOGON_HOURS|INVALID_WORKSTATION)$/,
    'FILE_SOURCE_AUTH_FAILED',
    'the share refused the configured user and password',
  ],
  [/^NT_STATUS_BAD_NETWORK_NAME$/, 'FILE_SOURCE_SHARE_NOT_FOUND', 'the server has no such share'],
  [
    /^NT_STATUS_(OBJECT_NAME_NOT_FOUND|OBJECT_PATH_NOT_FOUND|NO_SUCH_FILE|OBJECT_NAME_INVALID|NOT_FOUND|DELETE_PENDING)$/,
    'FILE_NOT_FOUND',
    'no such file or folder',
  ],
  [/^NT_STATUS_FILE_IS_A_DIRECTORY$/, 'FILE_NOT_A_FILE', 'it is a folder, not a file'],
  [/^NT_STATUS_NOT_A_DIRECTORY$/, 'FILE_NOT_A_DIRECTORY', 'it is a file, not a folder'],
  [/^NT_STATUS_(SHARING_VIOLATION|FILE_LOCK_CONFLICT|LOCK_NOT_GRANTED)$/, 'FILE_BUSY', 'the file is open for writing elsewhere (still being copied?)'],
  [/^NT_STATUS_(ACCESS_DENIED|NETWORK_ACCESS_DENIED|FILE_ACCESS_DENIED|PRIVILEGE_NOT_HELD)$/, 'FILE_ACCESS_DENIED', 'the configured user may not read it'],
  [
    /^NT_STATUS_(CONNECTION_REFUSED|HOST_UNREACHABLE|NETWORK_UNREACHABLE|PORT_UNREACHABLE|BAD_NETWORK_PATH|INVALID_ADDRESS|ADDRESS_NOT_ASSOCIATED|UNSUCCESSFUL)$/,
    'FILE_SOURCE_UNREACHABLE',
    'the server cannot be reached',
  ],
  [/^NT_STATUS_(IO_TIMEOUT|TIMEOUT)$/, 'FILE_SOURCE_TIMEOUT', 'the server did not answer in time'],
  [
    /^NT_STATUS_(CONNECTION_RESET|CONNECTION_DISCONNECTED|CONNECTION_ABORTED|NETWORK_NAME_DELETED|PIPE_BROKEN|PIPE_DISCONNECTED|END_OF_FILE|NETWORK_SESSION_EXPIRED|USER_SESSION_DELETED|INVALID_NETWORK_RESPONSE|REMOTE_DISCONNECT|LOCAL_DISCONNECT|CONNECTION_INVALID)$/,
    'FILE_READ_INTERRUPTED',
    'the connection to the server was lost',
  ],
];

/**
 * The failure smbclient reported in `output` (its messages, without listing lines, whose names could hold
 * anything), or null when it reported none. The status is the first NT_STATUS token of the first line that
 * has one: smbclient puts it before any path it names. `what` names the thing for the message, e.g.
 * `isos/a.iso on file source share (\\10.0.0.5\files)`.
 */
export function smbFailure(output: string, what: string): FileSourceError | null {
  const status = /NT_STATUS_[A-Z0-9_]+/.exec(output)?.[0];
  if (status) {
    const hit = STATUS_CODES.find(([re]) => re.test(status));
    const [code, meaning] = hit ? [hit[1], hit[2]] : (['FILE_SOURCE_FAILED', 'smbclient reported an error'] as const);
    return new FileSourceError(code, `${what}: ${meaning} (${status})`, { details: { status } });
  }
  if (/Connection to .* failed|Unable to resolve|not resolve|No route to host/i.test(output)) {
    return new FileSourceError('FILE_SOURCE_UNREACHABLE', `${what}: the server cannot be reached`);
  }
  return null;
}

/**
 * smbclient's own messages in `output`: without the lines that echo names (listing entries, `altname:`,
 * `getting file ...`), since a name may hold anything, even "NT_STATUS_".
 */
export function messagesOf(output: string): string {
  return output
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => !LS_LINE.test(l) && !/^(altname: |getting file )/.test(l))
    .join('\n');
}
