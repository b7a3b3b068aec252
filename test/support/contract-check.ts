import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv, { ValidateFunction } from 'ajv';
import type { RecordedResponse } from './contract-recorder';

/** The part of an OpenAPI document the comparison reads. */
export interface ContractDoc {
  paths: Record<string, Record<string, { responses?: Record<string, DeclaredResponse> }>>;
  components?: Record<string, unknown>;
}

interface DeclaredResponse {
  description?: string;
  content?: Record<string, { schema?: Record<string, unknown> }>;
  'x-error-codes'?: string[];
}

/** One answer the service gave that the document does not declare, with how often and an example path. */
export interface Mismatch {
  operation: string;
  status: number;
  /** the error code; `(no body)` for a bodiless error, `(no code)` for a JSON body without one */
  code: string;
  problem:
    | 'status not declared'
    | 'code not declared'
    | 'body does not match the schema'
    | 'schema cannot be checked'
    | 'error without a code'
    | 'declared with a body, answered without';
  count: number;
  example: string;
  detail?: string;
}

interface Operation {
  method: string;
  template: string;
  regex: RegExp;
  /** literal characters of the template, to prefer `/images/counts` over `/images/{id}` */
  literal: number;
  responses: Record<string, DeclaredResponse>;
}

function operationsOf(doc: ContractDoc): Operation[] {
  const out: Operation[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    const regex = new RegExp(
      '^' +
        template
          .split(/(\{[^}]+\})/)
          .map((part) => (part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('') +
        '/?$',
    );
    for (const [method, op] of Object.entries(item)) {
      if (!op || typeof op !== 'object' || !('responses' in op)) continue;
      out.push({ method, template, regex, literal: template.replace(/\{[^}]+\}/g, '').length, responses: op.responses ?? {} });
    }
  }
  return out.sort((a, b) => b.literal - a.literal);
}

/** The operation an answered request belongs to, or undefined (an unknown route or method: no operation). */
function matchOperation(ops: Operation[], method: string, path: string): Operation | undefined {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // keep it encoded
  }
  return ops.find((o) => o.method === method && (o.regex.test(path) || o.regex.test(decoded)));
}

/**
 * A copy of a schema in which every object that lists its properties allows no others: a field the service
 * answers but the document does not describe is one a generated client drops. (allOf branches are left open,
 * each of them would refuse the other's properties.)
 */
function closed(schema: unknown, inAllOf = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => closed(s, inAllOf));
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'example' || k === 'examples') out[k] = v;
    else if (k === 'properties' && v && typeof v === 'object') out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, closed(s)]));
    else out[k] = closed(v, k === 'allOf');
  }
  if (out.properties && out.additionalProperties === undefined && !inAllOf) out.additionalProperties = false;
  return out;
}

/** Compiles the JSON schema of a declared response once, with the document's components for its $refs. */
function validatorFor(ajv: Ajv, doc: ContractDoc, cache: Map<object, ValidateFunction>, schema: Record<string, unknown>): ValidateFunction {
  let v = cache.get(schema);
  if (!v) {
    v = ajv.compile(closed({ ...schema, components: doc.components }) as Record<string, unknown>);
    cache.set(schema, v);
  }
  return v;
}

/**
 * Every (operation, status, code) the service answered that the document does not declare, and every recorded
 * JSON body of a status declared with a schema (2xx, readiness's 503) that does not match it. Records of unknown
 * routes (404/405 with no operation) are not about any operation and are left out.
 */
export function compareWithContract(doc: ContractDoc, records: Iterable<RecordedResponse>): Mismatch[] {
  const ops = operationsOf(doc);
  const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: false });
  const cache = new Map<object, ValidateFunction>();
  const found = new Map<string, Mismatch>();
  const add = (m: Omit<Mismatch, 'count'>) => {
    const key = `${m.operation} ${m.status} ${m.code} ${m.problem}`;
    const had = found.get(key);
    if (had) had.count++;
    else found.set(key, { ...m, count: 1 });
  };
  for (const r of records) {
    const op = matchOperation(ops, r.method, r.path);
    if (!op) continue;
    const operation = `${r.method.toUpperCase()} ${op.template}`;
    const example = `${r.method.toUpperCase()} ${r.path}`;
    const declared = op.responses[String(r.status)];
    const code = r.code ?? (r.status >= 400 ? (r.method === 'head' ? '(no body)' : '(no code)') : '-');
    if (!declared) {
      add({ operation, status: r.status, code, problem: 'status not declared', example });
      continue;
    }
    if (r.method === 'head' && declared.content !== undefined) {
      add({ operation, status: r.status, code, problem: 'declared with a body, answered without', example });
      continue;
    }
    // an error status of the error body lists its codes; any other status (2xx, or e.g. readiness's 503) has a schema
    if (declared['x-error-codes'] !== undefined) {
      if (r.code === null && r.method !== 'head') {
        add({ operation, status: r.status, code, problem: 'error without a code', example });
        continue;
      }
      if (r.code !== null && !declared['x-error-codes'].includes(r.code)) add({ operation, status: r.status, code, problem: 'code not declared', example });
      continue;
    }
    if (r.code !== null) {
      add({ operation, status: r.status, code, problem: 'code not declared', example });
      continue;
    }
    const schema = declared.content?.['application/json']?.schema;
    if (r.body !== undefined && schema) {
      let validate: ValidateFunction;
      try {
        validate = validatorFor(ajv, doc, cache, schema);
      } catch (e) {
        add({ operation, status: r.status, code, problem: 'schema cannot be checked', example, detail: (e as Error).message });
        continue;
      }
      if (!validate(r.body)) {
        const e = validate.errors?.[0];
        add({
          operation,
          status: r.status,
          code,
          problem: 'body does not match the schema',
          example,
          detail: e ? `${e.instancePath || '/'} ${e.message ?? ''}` : undefined,
        });
      }
    }
  }
  return [...found.values()].sort((a, b) => `${a.operation} ${a.status}`.localeCompare(`${b.operation} ${b.status}`));
}

/** Written into the run directory by the contract test once it has compared the records. */
export const CHECKED_MARKER = 'contract-checked';

/**
 * Waits until every other test file of the run has finished (the run's reporter, test/support/summary-reporter.js,
 * counts them into the run directory), so that the comparison sees all their answers when the files run in
 * parallel workers. Returns how many other files finished; a run without the reporter's count (a directory given
 * from outside and no reporter) returns at once. Throws, naming what is missing, after `timeoutMs`.
 */
export async function waitForOtherFiles(dir: string, self: string, timeoutMs: number): Promise<number> {
  const { RUN_FILE, FINISHED_FILE } = require('./summary-reporter.js') as { RUN_FILE: string; FINISHED_FILE: string };
  const runFile = join(dir, RUN_FILE);
  if (!existsSync(runFile)) return 0;
  const { total } = JSON.parse(readFileSync(runFile, 'utf8')) as { total: number };
  const finished = () => {
    const f = join(dir, FINISHED_FILE);
    return existsSync(f)
      ? new Set(
          readFileSync(f, 'utf8')
            .split('\n')
            .filter((l) => l && l !== self),
        ).size
      : 0;
  };
  const deadline = Date.now() + timeoutMs;
  while (finished() < total - 1) {
    if (Date.now() > deadline) throw new Error(`the contract test waited ${timeoutMs} ms: ${finished()} of the run's ${total - 1} other files finished`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return finished();
}

/** Every record of a run directory (one JSON line per answer, one file per process). */
export function readRecords(dir: string): RecordedResponse[] {
  const out: RecordedResponse[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.jsonl')) continue;
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as RecordedResponse);
      } catch {
        // a line cut by a killed child process
      }
    }
  }
  return out;
}

/** The mismatches as lines a person can act on. */
export const describeMismatches = (ms: Mismatch[]): string =>
  ms.map((m) => `${m.operation} -> ${m.status} ${m.code}: ${m.problem}${m.detail ? ` (${m.detail})` : ''}, ${m.count}x, e.g. ${m.example}`).join('\n');
