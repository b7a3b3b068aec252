import { isAbsolute } from 'node:path';
import { plainToInstance, Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, Min, validateSync } from 'class-validator';
import { ConfigError } from '../config/config-error';
import { normalisePath } from './file-path';

/** A file source's name: what `source.fileSource` and the routes use. */
export const SOURCE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export type FileSourceSpec =
  | { name: string; kind: 'smb'; host: string; port: number; share: string; root: string; user: string; domain?: string; password: string }
  | { name: string; kind: 'dir'; root: string }
  | {
      name: string;
      kind: 'bucket';
      bucket: string;
      prefix: string;
      /** 'service': the store that holds the images (MINIO_*); else an S3 endpoint of its own */
      store: 'service' | { endPoint: string; port: number; useSSL: boolean; accessKey: string; secretKey: string; region: string };
    };

export interface FileSourcesConfig {
  /** in the order configured; the first one is the default of a create that names none */
  sources: FileSourceSpec[];
  /** FILE_SOURCE_TIMEOUT_MS */
  timeoutMs: number;
  /** FILE_SOURCE_SMBCLIENT */
  smbclient: string;
  /** FILE_SOURCE_MAX_ENTRIES: the most entries one directory listing reads */
  maxEntries: number;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const HOST = /^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/;
const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/;

/** `name=value,name=value` (values percent-encoded), into a map; problems name the key only, never a value. */
export function parsePasswords(text: string | undefined, problems: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (text ?? '').split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? '' : part.slice(0, eq).trim();
    if (!SOURCE_NAME.test(name)) {
      problems.push('FILE_SOURCE_PASSWORDS: every entry must be <source name>=<percent-encoded password> (value hidden)');
      continue;
    }
    try {
      const value = decodeURIComponent(part.slice(eq + 1));
      if (!NO_CONTROL.test(value)) throw new Error('control character');
      out.set(name, value);
    } catch {
      problems.push(`FILE_SOURCE_PASSWORDS: the password of ${name} is not valid percent-encoding or holds a control character (value hidden)`);
    }
  }
  return out;
}

const decode = (s: string): string => decodeURIComponent(s);

/** Splits a URL's path into decoded, normalised segments ('' for none). */
function pathOf(url: URL, what: string, problems: string[]): string[] | null {
  try {
    const segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decode);
    return segments.length ? normalisePath(segments.join('/')).split('/') : [];
  } catch (e) {
    problems.push(`FILE_SOURCES: ${what}: the path is not acceptable (${(e as Error).message})`);
    return null;
  }
}

/**
 * Parses FILE_SOURCES: a comma-separated list of `name=URL`, in the order they are offered:
 *
 *   smb://[domain;]user@host[:port]/share[/folder...]   an SMB share (port 445 by default); the password is
 *                                                       FILE_SOURCE_PASSWORDS' entry for the name
 *   file:///absolute/path                               a directory on this host (the share mounted)
 *   s3:///bucket[/prefix]                               a bucket of the store that holds the images
 *                                                       (STORAGE_DRIVER=minio): copied server-side
 *   s3://accessKey@host[:port]/bucket[/prefix][?ssl=true&region=r]
 *                                                       a bucket of another S3 store; the secret key is
 *                                                       FILE_SOURCE_PASSWORDS' entry for the name
 *
 * Names are 1-32 of [a-z0-9_-]. Special characters in a user, share or path are percent-encoded (`%20` for a
 * space, `%2C` for a comma). A password inside a URL is refused (it would show wherever the URL does), and no
 * problem message ever repeats a password.
 */
export function parseFileSources(text: string | undefined, passwordsText: string | undefined, problems: string[]): FileSourceSpec[] {
  const passwords = parsePasswords(passwordsText, problems);
  const out: FileSourceSpec[] = [];
  const seen = new Set<string>();
  for (const raw of (text ?? '').split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? '' : part.slice(0, eq).trim();
    const what = `source ${JSON.stringify(name || part.slice(0, 40))}`;
    if (!SOURCE_NAME.test(name)) {
      problems.push(`FILE_SOURCES: ${what}: every entry must be <name>=<url> with a name of 1-32 of a-z 0-9 _ - (starting with a letter or digit)`);
      continue;
    }
    if (seen.has(name)) {
      problems.push(`FILE_SOURCES: the name ${name} is used twice`);
      continue;
    }
    seen.add(name);
    let url: URL;
    try {
      url = new URL(part.slice(eq + 1).trim());
    } catch {
      problems.push(`FILE_SOURCES: ${what}: not a URL (smb://user@host/share, file:///path or s3:///bucket/prefix)`);
      continue;
    }
    if (url.password) {
      problems.push(`FILE_SOURCES: ${what}: put the password in FILE_SOURCE_PASSWORDS, not in the URL`);
      continue;
    }
    const spec = parseOne(name, url, what, passwords, problems);
    if (spec) out.push(spec);
  }
  for (const name of passwords.keys()) {
    if (!seen.has(name)) problems.push(`FILE_SOURCE_PASSWORDS: ${name} is not a source of FILE_SOURCES`);
  }
  return out;
}

function parseOne(name: string, url: URL, what: string, passwords: Map<string, string>, problems: string[]): FileSourceSpec | null {
  const problem = (m: string) => {
    problems.push(`FILE_SOURCES: ${what}: ${m}`);
    return null;
  };
  switch (url.protocol) {
    case 'smb:': {
      if (!url.hostname || !HOST.test(url.hostname)) return problem('smb:// needs a host: smb://user@host[:port]/share[/folder]');
      const userinfo = decode(url.username);
      if (!userinfo) return problem('smb:// needs a user: smb://user@host/share');
      const [domain, user] = userinfo.includes(';')
        ? [userinfo.slice(0, userinfo.indexOf(';')), userinfo.slice(userinfo.indexOf(';') + 1)]
        : [undefined, userinfo];
      if (!user || !NO_CONTROL.test(userinfo)) return problem('the user is empty or holds a control character');
      const segments = pathOf(url, what, problems);
      if (!segments) return null;
      if (segments.length === 0) return problem('smb:// needs a share: smb://user@host/share');
      const password = passwords.get(name);
      if (password === undefined) return problem(`FILE_SOURCE_PASSWORDS has no password for ${name}`);
      if (/^\s|\s$/.test(password))
        return problem(`the password in FILE_SOURCE_PASSWORDS starts or ends with a space, which smbclient's authentication file cannot carry (value hidden)`);
      if (url.search || url.hash) return problem('an smb:// URL takes no query or fragment');
      return {
        name,
        kind: 'smb',
        host: url.hostname,
        port: url.port ? Number(url.port) : 445,
        share: segments[0],
        root: segments.slice(1).join('/'),
        user,
        domain: domain || undefined,
        password,
      };
    }
    case 'file:': {
      const path = decode(url.pathname);
      if (url.hostname) return problem('file:// takes no host: file:///absolute/path');
      if (!isAbsolute(path) || !NO_CONTROL.test(path)) return problem('file:// needs an absolute path: file:///mnt/files');
      if (passwords.has(name)) return problem('a file:// source takes no password');
      return { name, kind: 'dir', root: path.length > 1 ? path.replace(/\/+$/, '') : path };
    }
    case 's3:': {
      const segments = pathOf(url, what, problems);
      if (!segments) return null;
      if (segments.length === 0 || !BUCKET.test(segments[0])) return problem('s3:// needs a bucket name (3-63 of a-z 0-9 . -): s3:///bucket[/prefix]');
      const [bucket, ...prefix] = segments;
      if (!url.hostname) {
        if (url.username || url.search) return problem('s3:///bucket (the images store) takes no user or options');
        if (passwords.has(name)) return problem('an s3:/// source on the images store takes no password');
        return { name, kind: 'bucket', bucket, prefix: prefix.join('/'), store: 'service' };
      }
      if (!HOST.test(url.hostname)) return problem('not a host name');
      const accessKey = decode(url.username);
      const secretKey = passwords.get(name);
      if (!accessKey || secretKey === undefined)
        return problem(`s3://accessKey@host/bucket needs the access key in the URL and the secret key in FILE_SOURCE_PASSWORDS`);
      const ssl = url.searchParams.get('ssl');
      const useSSL = ssl === 'true' || ssl === '1';
      const port = url.port ? Number(url.port) : useSSL ? 443 : 9000;
      return {
        name,
        kind: 'bucket',
        bucket,
        prefix: prefix.join('/'),
        store: { endPoint: url.hostname, port, useSSL, accessKey, secretKey, region: url.searchParams.get('region') ?? 'us-east-1' },
      };
    }
    default:
      return problem(`unknown scheme ${url.protocol} (smb:, file: or s3:)`);
  }
}

const toInt = ({ value }: { value: unknown }) => (value === undefined || value === '' ? undefined : Number(value));
const emptyToUndefined = ({ value }: { value: unknown }) => (value === '' ? undefined : value);

/** The file directory's variables: this module owns their schema (config/ runs the check at boot with the rest). */
export class FileSourcesEnvVars {
  /** `name=URL,...`: smb://user@host[:port]/share[/folder], file:///path, s3:///bucket[/prefix] */
  @IsOptional()
  @IsString()
  FILE_SOURCES?: string;

  /** `name=<percent-encoded password>,...` for the smb:// (and foreign s3://) sources */
  @IsOptional()
  @IsString()
  FILE_SOURCE_PASSWORDS?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(3600000)
  FILE_SOURCE_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  FILE_SOURCE_SMBCLIENT?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(1000000)
  FILE_SOURCE_MAX_ENTRIES?: number;
}

/** Reads FILE_SOURCE*; pushes what is wrong onto `problems` (never a password). */
export function readFileSourcesConfig(env: Record<string, string | undefined>, problems: string[]): FileSourcesConfig {
  const vars = plainToInstance(FileSourcesEnvVars, {
    FILE_SOURCES: env.FILE_SOURCES,
    FILE_SOURCE_PASSWORDS: env.FILE_SOURCE_PASSWORDS,
    FILE_SOURCE_TIMEOUT_MS: env.FILE_SOURCE_TIMEOUT_MS,
    FILE_SOURCE_SMBCLIENT: env.FILE_SOURCE_SMBCLIENT,
    FILE_SOURCE_MAX_ENTRIES: env.FILE_SOURCE_MAX_ENTRIES,
  });
  for (const e of validateSync(vars, { whitelist: false, forbidUnknownValues: false })) {
    const shown = e.property === 'FILE_SOURCE_PASSWORDS' ? '(hidden)' : JSON.stringify(env[e.property]);
    problems.push(`${e.property}=${shown}: ${Object.values(e.constraints ?? {}).join('; ')}`);
  }
  const sources = parseFileSources(vars.FILE_SOURCES, vars.FILE_SOURCE_PASSWORDS, problems);
  for (const s of sources) {
    if (s.kind === 'bucket' && s.store === 'service' && env.STORAGE_DRIVER !== 'minio')
      problems.push(`FILE_SOURCES: source ${s.name}: s3:///bucket reads the images store, which needs STORAGE_DRIVER=minio`);
  }
  return {
    sources,
    timeoutMs: vars.FILE_SOURCE_TIMEOUT_MS ?? 30_000,
    smbclient: vars.FILE_SOURCE_SMBCLIENT ?? 'smbclient',
    maxEntries: vars.FILE_SOURCE_MAX_ENTRIES ?? 10_000,
  };
}

/** The check loadConfig runs at boot (src/feature-configs.ts). */
export function checkFileSourcesConfig(env: Record<string, string | undefined>, problems: string[]): void {
  readFileSourcesConfig(env, problems);
}

/** The file directory's settings from the (already checked) variables; throws ConfigError when they are wrong. */
export function loadFileSourcesConfig(env: Record<string, string | undefined>): FileSourcesConfig {
  const problems: string[] = [];
  const cfg = readFileSourcesConfig(env, problems);
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}
