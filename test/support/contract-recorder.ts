import { appendFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { join } from 'node:path';

/**
 * Records what the service really answered during a test run, so test/integration/contract-coverage.int-spec.ts
 * can compare it with openapi.yaml: one JSON line per response (method, path, status, error code, and a sample of
 * the JSON bodies of successful answers) in a file of the per-run directory test/support/global-setup.ts creates.
 * Installed by startApp (in-process apps) and, through contract-recorder-preload, in service child processes.
 */
export const CONTRACT_DIR_ENV = 'HCM_CONTRACT_RECORD_DIR';
/** set when global-setup made the directory itself (global-teardown removes it) */
export const CONTRACT_OWN_DIR_ENV = 'HCM_CONTRACT_RECORD_DIR_OWN';

export interface RecordedResponse {
  method: string;
  /** the request path, without the query */
  path: string;
  status: number;
  contentType: string | null;
  /** the `code` of a JSON error body; null when there is no body (HEAD, 304) or it carries none */
  code: string | null;
  /** the parsed JSON body of a 2xx answer or of an error without a code (a sample of them, see BODY_SAMPLES) */
  body?: unknown;
}

/** the largest body kept; larger ones are recorded without it */
const MAX_BODY_BYTES = 256 * 1024;
/** successful JSON bodies kept per (method, path shape, status) and process */
const BODY_SAMPLES = 20;
const sampled = new Map<string, number>();

/** This process's record file, or undefined when no run directory is set (recording off). */
export function recordFile(): string | undefined {
  const dir = process.env[CONTRACT_DIR_ENV];
  return dir ? join(dir, `${process.pid}.jsonl`) : undefined;
}

const shape = (path: string) => path.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '{uuid}');

/** Watches one response and appends its record to `file` when it has been sent. */
export function recordResponse(req: IncomingMessage, res: ServerResponse, file: string): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let json: boolean | undefined;
  const grab = (chunk: unknown, encoding: unknown) => {
    json ??= /json/i.test(String(res.getHeader('content-type') ?? ''));
    if (!json || chunk === undefined || chunk === null || typeof chunk === 'function' || size > MAX_BODY_BYTES) return;
    const b = Buffer.isBuffer(chunk)
      ? chunk
      : chunk instanceof Uint8Array
        ? Buffer.from(chunk)
        : Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    size += b.length;
    if (size <= MAX_BODY_BYTES) chunks.push(b);
  };
  const write = res.write.bind(res) as (...a: unknown[]) => boolean;
  const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    grab(chunk, rest[0]);
    return write(chunk, ...rest);
  }) as ServerResponse['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    grab(chunk, rest[0]);
    return end(chunk, ...rest);
  }) as ServerResponse['end'];
  res.once('finish', () => {
    const method = (req.method ?? 'GET').toLowerCase();
    const path = (req.url ?? '/').split('?')[0];
    const contentType = (res.getHeader('content-type') as string | undefined) ?? null;
    let parsed: unknown;
    if (json && size > 0 && size <= MAX_BODY_BYTES) {
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        parsed = undefined;
      }
    }
    const rec: RecordedResponse = { method, path, status: res.statusCode, contentType, code: null };
    const code = res.statusCode >= 400 ? (parsed as { code?: unknown } | undefined)?.code : undefined;
    if (typeof code === 'string') rec.code = code;
    else if ((res.statusCode < 300 || res.statusCode >= 400) && parsed !== undefined) {
      // a successful answer, or an error answered with its own body (readiness: 503 with the checks)
      const key = `${method} ${shape(path)} ${res.statusCode}`;
      const n = sampled.get(key) ?? 0;
      if (n < BODY_SAMPLES) {
        sampled.set(key, n + 1);
        rec.body = parsed;
      }
    }
    try {
      appendFileSync(file, JSON.stringify(rec) + '\n');
    } catch {
      // the run directory is gone (the run is over): nothing to record into
    }
  });
}

/** Records every response of an HTTP server (the in-process app's), when the run records. */
export function recordServer(server: Server): void {
  const file = recordFile();
  if (!file) return;
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => recordResponse(req, res, file));
}
