/**
 * The reading rules of openapi.yaml, for someone who never saw the code (checked on the committed document by
 * src/openapi-lint.spec.ts). Each problem is one line naming where it is, so a failure says what to fix.
 */

/** `number` is for what is fractional; every other numeric field (pages, totals, sizes, counts) is an integer. */
export const FRACTIONAL = new Set(['percent']);
const REQUIREMENT = /\bR\d+\b/;
const OPERATION_ID =
  /^(list|count|get|create|update|delete|enable|disable|upload|download|head|retry|set|reconcile|register|mount|unmount|grow|commit|release|refund|stream)[A-Z][A-Za-z]*$/;
const FILE_OPERATIONS = ['downloadImageFile', 'headImageFile', 'downloadSignedFile', 'headSignedFile'];

type Json = Record<string, any>;

const hasExample = (x: Json) => x.example !== undefined || (x.examples !== undefined && Object.keys(x.examples).length > 0);

/** The problems of an OpenAPI 3.0 document against the reading rules; empty when it reads well. */
export function lintOpenApi(doc: Json): string[] {
  const problems: string[] = [];
  const text = (at: string, v: unknown) => {
    if (typeof v === 'string' && REQUIREMENT.test(v)) problems.push(`${at}: cites a requirement number (${REQUIREMENT.exec(v)![0]})`);
  };
  const tags: Array<{ name: string; description?: string }> = doc.tags ?? [];
  if (tags.length === 0) problems.push('tags: none declared');
  for (const t of tags) {
    if (!t.description) problems.push(`tag ${t.name}: no description`);
    text(`tag ${t.name}`, t.description);
  }
  const usedTags = new Set<string>();
  const ids = new Map<string, string>();

  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item)) {
      const at = `${method.toUpperCase()} ${path}`;
      const id: string | undefined = op.operationId;
      if (!id || !OPERATION_ID.test(id)) problems.push(`${at}: operationId ${id} is not camelCase verbNoun`);
      else if (ids.has(id)) problems.push(`${at}: operationId ${id} is also ${ids.get(id)}`);
      else ids.set(id, at);
      const summary: unknown = op.summary;
      if (typeof summary !== 'string' || summary.length === 0) problems.push(`${at}: no summary`);
      else {
        if (summary.length > 80) problems.push(`${at}: summary of ${summary.length} characters (at most 80)`);
        if (/[.]$/.test(summary)) problems.push(`${at}: summary ends with a period`);
        text(`${at} summary`, summary);
      }
      const description: unknown = op.description;
      if (typeof description !== 'string' || description.length < 40 || description === summary) problems.push(`${at}: no real description`);
      text(`${at} description`, description);
      if (!op.tags?.length) problems.push(`${at}: no tag`);
      for (const t of op.tags ?? []) {
        usedTags.add(t);
        if (!tags.some((d) => d.name === t)) problems.push(`${at}: tag ${t} is not declared`);
      }
      for (const p of op.parameters ?? []) {
        const pat = `${at} parameter ${p.in} ${p.name}`;
        if (!p.description) problems.push(`${pat}: no description`);
        text(pat, p.description);
        if (!hasExample(p) && !hasExample(p.schema ?? {})) problems.push(`${pat}: no example`);
        if (p.schema?.type === 'number' && !FRACTIONAL.has(p.name)) problems.push(`${pat}: type number, not integer`);
      }
      for (const [status, r] of Object.entries<Json>(op.responses ?? {})) {
        const rat = `${at} ${status}`;
        if (!r.description) problems.push(`${rat}: no description`);
        text(rat, r.description);
        const headers = r.headers ?? {};
        if (!headers['X-Correlation-Id']) problems.push(`${rat}: X-Correlation-Id not declared`);
        if ((status === '429' || status === '503') && !headers['Retry-After']) problems.push(`${rat}: Retry-After not declared`);
        if (FILE_OPERATIONS.includes(id!)) {
          const want =
            status === '206'
              ? ['ETag', 'Accept-Ranges', 'Content-Length', 'Content-Range']
              : status === '200'
                ? ['ETag', 'Accept-Ranges', 'Content-Length', 'Content-Disposition']
                : status === '416'
                  ? ['Content-Range']
                  : [];
          for (const h of want) if (!headers[h]) problems.push(`${rat}: ${h} not declared`);
        }
      }
    }
  }
  for (const t of tags) if (!usedTags.has(t.name)) problems.push(`tag ${t.name}: no operation uses it`);

  for (const [name, h] of Object.entries<Json>(doc.components?.headers ?? {})) {
    if (!h.description) problems.push(`header ${name}: no description`);
    if (!hasExample(h.schema ?? {}) && !hasExample(h)) problems.push(`header ${name}: no example`);
  }
  for (const [name, schema] of Object.entries<Json>(doc.components?.schemas ?? {})) {
    text(`schema ${name}`, schema.description);
    for (const [prop, s] of Object.entries<Json>(schema.properties ?? {})) {
      const pat = `schema ${name}.${prop}`;
      if (!s.description) problems.push(`${pat}: no description`);
      text(pat, s.description);
      // an object (or a list of objects) has its examples on its own properties
      const target: string | undefined = (s.$ref ?? s.allOf?.[0]?.$ref ?? s.oneOf?.[0]?.$ref ?? s.items?.$ref) as string | undefined;
      const isObject = target !== undefined && doc.components.schemas[target.split('/').pop()!]?.type === 'object';
      if (!isObject && !hasExample(s)) problems.push(`${pat}: no example`);
      const type = s.type === 'array' ? s.items?.type : s.type;
      if (type === 'number' && !FRACTIONAL.has(prop)) problems.push(`${pat}: type number, not integer`);
    }
  }
  return problems;
}
