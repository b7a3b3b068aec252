import { LoggerService, LogLevel as NestLogLevel } from '@nestjs/common';
import pino, { Logger as PinoLogger } from 'pino';
import { currentCorrelationId } from '../common/request-context';

/** Nest's levels as pino levels (pino's own names are not used, so a line says `log` as it always has). */
const LEVELS: Record<NestLogLevel, number> = { verbose: 10, debug: 20, log: 30, warn: 40, error: 50, fatal: 60 };

const CENSOR = '[redacted]';

/** Patterns that must never reach a log line: bearer tokens, passwords and keys in URLs or key=value text. */
const REDACTIONS: Array<[RegExp, string]> = [
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1[redacted]'],
  [/(Basic\s+)[A-Za-z0-9+/=_-]{6,}/g, '$1[redacted]'],
  [/(\/\/[^:/@\s]+:)[^@\s]+@/g, '$1[redacted]@'],
  [
    /([A-Za-z_]*(?:password|passwd|pwd|secret|token|access_?key|private_?key|credential)[A-Za-z_]*["']?\s*[=:]\s*["']?)(?!\[redacted\])[^"'\s,&}]+/gi,
    '$1[redacted]',
  ],
];

export function redact(text: string): string {
  return REDACTIONS.reduce((t, [re, sub]) => t.replace(re, sub), text);
}

/** Field names whose value is a secret whatever it looks like, at any depth. */
const SECRET_KEY = /pass(word|wd|phrase)?$|^pwd$|secret|token|authorization|cookie|access_?key|private_?key|api_?key|credential|signature/i;

/**
 * Redaction by path, for pino: the fields that carry secrets where the service puts them (top level and
 * one level down). sanitize() below covers every other depth and shape; the line-level pass in write()
 * catches what is left in free text.
 */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  'authorization',
  'secretKey',
  'accessKey',
  '*.password',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.secretKey',
  '*.accessKey',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** A copy of a logged value with secret fields censored and secret text redacted, at any depth. */
export function sanitize(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redact(value);
  if (value === null || typeof value !== 'object') return typeof value === 'bigint' ? value.toString() : value;
  if (seen.has(value)) return '[circular]';
  if (depth > 8) return '[too deep]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => sanitize(v, depth + 1, seen));
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  const out: Record<string, unknown> = {};
  if (value instanceof Error) {
    out.type = value.name;
    out.message = redact(value.message);
    if (value.stack) out.stack = redact(value.stack);
    if (value.cause !== undefined) out.cause = sanitize(value.cause, depth + 1, seen);
  }
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined && v !== '' ? CENSOR : sanitize(v, depth + 1, seen);
  return out;
}

type Out = (line: string, level: NestLogLevel) => void;
const toConsole: Out = (line, l) => (l === 'error' || l === 'fatal' ? process.stderr : process.stdout).write(line + '\n');

/**
 * One JSON object per line on stdout (errors on stderr), written by pino: time, level, context, msg, the
 * request's correlation id when there is one, and the fields of an object message. Secrets are removed
 * three ways: pino's redaction by path, a deep sanitize of every logged value (nested objects, arrays,
 * Errors and their extra properties, secret-named fields at any depth), and a pass over the final line for
 * secrets in free text (`Bearer ...`, `password=...`, `user:pass@`).
 */
export class JsonLogger implements LoggerService {
  private readonly pino: PinoLogger<'verbose' | 'log', true>;
  private current: NestLogLevel = 'log';

  constructor(
    level: NestLogLevel,
    private readonly out: Out = toConsole,
  ) {
    this.pino = pino<'verbose' | 'log', true>(
      {
        level,
        customLevels: LEVELS,
        useOnlyCustomLevels: true,
        base: undefined,
        messageKey: 'msg',
        timestamp: () => `,"time":"${new Date().toISOString()}"`,
        formatters: { level: (label) => ({ level: label }) },
        redact: { paths: REDACT_PATHS, censor: CENSOR },
        mixin: () => {
          const correlationId = currentCorrelationId();
          return correlationId ? { correlationId } : {};
        },
      },
      { write: (line: string) => this.out(redact(line.endsWith('\n') ? line.slice(0, -1) : line), this.current) },
    );
  }

  private write(level: NestLogLevel, message: unknown, params: unknown[]): void {
    if (!this.pino.isLevelEnabled(level)) return;
    const rest = [...params];
    const last = rest[rest.length - 1];
    const context = typeof last === 'string' ? (rest.pop() as string) : undefined;
    const fields: Record<string, unknown> = { context };
    let msg: string | undefined;
    if (message instanceof Error) {
      const err = sanitize(message) as Record<string, unknown>;
      msg = err.message as string;
      fields.stack = err.stack;
      const { type: _t, message: _m, stack: _s, ...extra } = err;
      if (Object.keys(extra).length) fields.err = extra;
    } else if (message && typeof message === 'object') {
      Object.assign(fields, sanitize(message));
    } else {
      msg = redact(String(message));
    }
    const stack = rest.find((p) => typeof p === 'string' && p.includes('\n    at '));
    if (stack) fields.stack = redact(stack as string);
    this.current = level;
    if (msg === undefined) this.pino[level](fields);
    else this.pino[level](fields, msg);
  }

  log(message: unknown, ...params: unknown[]): void {
    this.write('log', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('verbose', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }
}
