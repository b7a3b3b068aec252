import { LoggerService, LogLevel as NestLogLevel } from '@nestjs/common';
import { currentCorrelationId } from '../common/request-context';

const ORDER: NestLogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Patterns that must never reach a log line: bearer tokens, passwords and keys in URLs or key=value text. */
const REDACTIONS: Array<[RegExp, string]> = [
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1[redacted]'],
  [/(\/\/[^:/@\s]+:)[^@\s]+@/g, '$1[redacted]@'],
  [/([A-Za-z_]*(?:password|passwd|secret|token|access_?key)[A-Za-z_]*["']?\s*[=:]\s*["']?)[^"'\s,&}]+/gi, '$1[redacted]'],
];

export function redact(text: string): string {
  return REDACTIONS.reduce((t, [re, sub]) => t.replace(re, sub), text);
}

/**
 * One JSON object per line on stdout (errors on stderr): time, level, context, message, the request's
 * correlation id when there is one, and extra fields. Secrets are redacted from every message.
 */
export class JsonLogger implements LoggerService {
  private readonly enabled: Set<NestLogLevel>;

  constructor(
    level: NestLogLevel,
    private readonly out: (line: string, level: NestLogLevel) => void = (line, l) => (l === 'error' || l === 'fatal' ? process.stderr : process.stdout).write(line + '\n'),
  ) {
    this.enabled = new Set(ORDER.slice(0, ORDER.indexOf(level) + 1));
  }

  private write(level: NestLogLevel, message: unknown, params: unknown[]): void {
    if (!this.enabled.has(level)) return;
    const last = params[params.length - 1];
    const context = typeof last === 'string' ? (params.pop() as string) : undefined;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, context };
    const correlationId = currentCorrelationId();
    if (correlationId) entry.correlationId = correlationId;
    if (message && typeof message === 'object' && !(message instanceof Error)) Object.assign(entry, message);
    else entry.msg = redact(message instanceof Error ? message.message : String(message));
    const stack = params.find((p) => typeof p === 'string' && p.includes('\n    at '));
    if (stack) entry.stack = redact(stack as string);
    if (typeof entry.msg === 'string') entry.msg = redact(entry.msg);
    this.out(JSON.stringify(entry), level);
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
