/**
 * Checks docker/ without a Docker engine (`npm run docker:check`; exits 1 naming every problem):
 *   compose-schema   docker-compose.yml against the Compose Specification JSON schema (the copy shipped in
 *                    dclint, validated with ajv; every error, with the offending key and its line)
 *   compose-lint     dclint's rules on the compose file; warnings fail as errors do
 *   compose-refs     depends_on names services that exist, `service_healthy` ones have a health check,
 *                    the build context and its Dockerfile exist, the context has a .dockerignore
 *   compose-env      every variable set on the service is a property of EnvVars (class-validator's own
 *                    metadata, so the real list), and loadConfig accepts the values the file fixes
 *   dockerfile-lint  dockerfile-utils (the Docker builder's syntax and argument rules), every rule an error
 *   dockerfile-policy this project's rules: tagged base images on the Node major of .nvmrc, non-root final USER, HEALTHCHECK, exec-form
 *                    CMD, apt-get hygiene, COPY not ADD, only production dependencies in the final image
 *
 *   node dist/scripts/check-docker.js [--compose <file>] [--dockerfile <file>] [--service <name>]
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import Ajv from 'ajv';
import { getMetadataStorage } from 'class-validator';
import { DCLinter } from 'dclint';
import { Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate as lintDockerfile, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError, EnvVars } from '../src/config/app-config';
import { FEATURE_ENV_SCHEMAS, loadAppConfig } from '../src/feature-configs';

export type CheckName = 'compose-schema' | 'compose-lint' | 'compose-refs' | 'compose-env' | 'dockerfile-lint' | 'dockerfile-policy';

export interface Problem {
  check: CheckName;
  file: string;
  line?: number;
  message: string;
}

export interface DockerCheckOptions {
  /** default: docker/docker-compose.yml of this repository */
  composeFile?: string;
  /** default: the Dockerfile the service's `build` names */
  dockerfile?: string;
  /** the compose service that runs this service; default image-service */
  service?: string;
}

export interface DockerCheckReport {
  problems: Problem[];
  /** one line per check that ran and passed, for people */
  passed: string[];
  /** checks that could not run because of an earlier problem */
  skipped: string[];
  composeFile: string;
  dockerfile?: string;
  /** the variables the service sets, sorted */
  serviceVariables: string[];
}

/** the repository root, from scripts/ (under jest) or dist/scripts/ (compiled) */
const repoRoot = [resolve(__dirname, '..'), resolve(__dirname, '..', '..')].find((d) => existsSync(join(d, 'package.json'))) ?? process.cwd();
const display = (file: string) => relative(process.cwd(), file) || file;
const versionOf = (pkg: string) => (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;

/** Every environment variable the service reads: the properties EnvVars and the features' own schemas declare to class-validator. */
export function serviceEnvVarNames(): Set<string> {
  const metas = [EnvVars, ...FEATURE_ENV_SCHEMAS].flatMap((schema) => getMetadataStorage().getTargetValidationMetadatas(schema, '', true, false));
  return new Set(metas.map((m) => m.propertyName));
}

export function checkDocker(options: DockerCheckOptions = {}): DockerCheckReport {
  const composeFile = resolve(options.composeFile ?? join(repoRoot, 'docker', 'docker-compose.yml'));
  const serviceName = options.service ?? 'image-service';
  const report: DockerCheckReport = { problems: [], passed: [], skipped: [], composeFile, serviceVariables: [] };
  const problem = (check: CheckName, file: string, message: string, line?: number) =>
    report.problems.push({ check, file: display(file), message, ...(line ? { line } : {}) });
  const countOf = (check: CheckName) => report.problems.filter((p) => p.check === check).length;

  // ---- the compose file ----
  const source = readFileSync(composeFile, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(source, { merge: true, lineCounter: lines, prettyErrors: true });
  for (const e of doc.errors) problem('compose-schema', composeFile, `not YAML: ${e.message.split('\n')[0]}`, e.linePos?.[0]?.line);
  if (doc.errors.length) return report;
  const compose = doc.toJS() as ComposeFile;
  const lineOf = (path: (string | number)[]) => nodeLine(doc, lines, path);

  // compose-schema: ajv over the Compose Specification schema shipped with dclint
  const schemaFile = join(dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json');
  const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });
  // the schema names draft-07 by an https URL ajv does not know; ajv's default meta-schema is draft-07
  const { $schema: _draft, ...composeSchema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>;
  const validateCompose = ajv.compile(composeSchema);
  if (!validateCompose(compose)) {
    const seen = new Set<string>();
    for (const e of validateCompose.errors ?? []) {
      const path = e.instancePath
        .split('/')
        .slice(1)
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      const extra = (e.params as { additionalProperty?: string }).additionalProperty;
      const where = extra !== undefined ? [...path, extra] : path;
      const message = `${where.join('.') || '(top level)'}: ${extra !== undefined ? 'is not a Compose Specification key' : e.message}`;
      if (seen.has(message)) continue;
      seen.add(message);
      problem('compose-schema', composeFile, message, lineOf(where));
    }
  }
  if (!countOf('compose-schema'))
    report.passed.push(`${display(composeFile)}: valid against the Compose Specification schema (from dclint ${versionOf('dclint')}, ajv ${versionOf('ajv')})`);

  // compose-lint: dclint's rules (all of them, at their default levels). dclint runs no rule on a file that
  // fails its own schema check, whose message repeats the ones above.
  const [linted] = new DCLinter({ rules: {}, quiet: false, debug: false, exclude: [] }).lintFiles([composeFile], false);
  let rulesRan = true;
  for (const m of linted?.messages ?? []) {
    if (m.rule === 'invalid-schema') rulesRan = false;
    if (m.rule === 'invalid-schema' && countOf('compose-schema')) continue;
    problem('compose-lint', composeFile, `${m.type} ${m.rule}: ${m.message}`, m.line);
  }
  if (!rulesRan) report.skipped.push(`${display(composeFile)}: dclint's rules, which do not run on a file that fails the schema`);
  else if (!countOf('compose-lint')) report.passed.push(`${display(composeFile)}: dclint ${versionOf('dclint')} rules, no errors or warnings`);

  // compose-refs
  const services = isObject(compose.services) ? compose.services : {};
  for (const [name, svc] of Object.entries(services)) {
    const deps = svc.depends_on;
    const entries: [string, { condition?: string }][] = Array.isArray(deps) ? deps.map((d) => [String(d), {}]) : Object.entries(isObject(deps) ? deps : {});
    for (const [dep, how] of entries) {
      if (!services[dep])
        problem('compose-refs', composeFile, `${name} depends on "${dep}", which is not a service here`, lineOf(['services', name, 'depends_on', dep]));
      else if (how?.condition === 'service_healthy' && !services[dep].healthcheck)
        problem(
          'compose-refs',
          composeFile,
          `${name} waits for "${dep}" to be healthy, but ${dep} has no healthcheck in this file`,
          lineOf(['services', name, 'depends_on', dep]),
        );
    }
  }
  const service = services[serviceName];
  let dockerfile = options.dockerfile ? resolve(options.dockerfile) : undefined;
  if (!service) problem('compose-refs', composeFile, `no service "${serviceName}"`);
  else {
    const build = typeof service.build === 'string' ? { context: service.build } : service.build;
    if (!build) problem('compose-refs', composeFile, `${serviceName} has no build section`, lineOf(['services', serviceName]));
    else {
      const context = resolve(dirname(composeFile), build.context ?? '.');
      const named = resolve(context, build.dockerfile ?? 'Dockerfile');
      dockerfile ??= named;
      if (!existsSync(named))
        problem('compose-refs', composeFile, `${serviceName} builds ${display(named)}, which does not exist`, lineOf(['services', serviceName, 'build']));
      const ignoreFile = join(context, '.dockerignore');
      const ignored = existsSync(ignoreFile)
        ? readFileSync(ignoreFile, 'utf8')
            .split('\n')
            .map((l) => l.trim().replace(/^\/|\/$/g, ''))
        : [];
      const missing = ['node_modules', 'dist', '.git'].filter((p) => !ignored.includes(p));
      if (missing.length)
        problem('compose-refs', composeFile, `the build context ${display(context)} needs a .dockerignore that leaves out ${missing.join(', ')}`);
    }
  }
  if (!countOf('compose-refs'))
    report.passed.push(
      `${display(composeFile)}: depends_on targets exist and the healthy ones have health checks; build context, Dockerfile and .dockerignore in place`,
    );

  // compose-env
  if (service) {
    const known = serviceEnvVarNames();
    if (service.env_file !== undefined)
      problem(
        'compose-env',
        composeFile,
        `${serviceName} uses env_file, which this check cannot see into: list its variables under environment`,
        lineOf(['services', serviceName, 'env_file']),
      );
    const env = environmentOf(service.environment);
    report.serviceVariables = Object.keys(env).sort();
    const unknown = report.serviceVariables.filter((k) => !known.has(k));
    for (const k of unknown)
      problem(
        'compose-env',
        composeFile,
        `${serviceName} sets ${k}, which the service does not read (not a property of EnvVars in src/config/app-config.ts nor of a feature's schema in src/feature-configs.ts)`,
        lineOf(['services', serviceName, 'environment', k]),
      );
    // the values this file fixes must boot; values taken from the operator's shell are checked at boot
    const resolved: Record<string, string> = {};
    const fromOperator = new Set<string>();
    for (const [k, v] of Object.entries(env)) {
      if (v === null) {
        fromOperator.add(k);
        continue;
      }
      const r = interpolate(v);
      resolved[k] = r.value;
      if (r.fromOperator) fromOperator.add(k);
    }
    try {
      loadAppConfig(resolved);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const p of e.problems) {
        const key = /^([A-Z0-9_]+)[=:]/.exec(p)?.[1];
        if (key && fromOperator.has(key)) continue;
        problem('compose-env', composeFile, `the service would refuse to start: ${p}`, key ? lineOf(['services', serviceName, 'environment', key]) : undefined);
      }
    }
    if (!countOf('compose-env'))
      report.passed.push(
        `${display(composeFile)}: ${serviceName} sets ${report.serviceVariables.length} variables, each one EnvVars declares (of ${known.size}); loadConfig accepts them`,
      );
  }

  // ---- the Dockerfile ----
  if (dockerfile && existsSync(dockerfile)) {
    report.dockerfile = dockerfile;
    const text = readFileSync(dockerfile, 'utf8');
    const everyRuleAnError: ValidatorSettings = {
      deprecatedMaintainer: ValidationSeverity.ERROR,
      directiveCasing: ValidationSeverity.ERROR,
      emptyContinuationLine: ValidationSeverity.ERROR,
      instructionCasing: ValidationSeverity.ERROR,
      instructionCmdMultiple: ValidationSeverity.ERROR,
      instructionEntrypointMultiple: ValidationSeverity.ERROR,
      instructionHealthcheckMultiple: ValidationSeverity.ERROR,
      instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
      instructionWorkdirRelative: ValidationSeverity.ERROR,
    };
    for (const d of lintDockerfile(text, everyRuleAnError))
      problem('dockerfile-lint', dockerfile, typeof d.message === 'string' ? d.message : d.message.value, d.range.start.line + 1);
    if (!countOf('dockerfile-lint'))
      report.passed.push(`${display(dockerfile)}: dockerfile-utils ${versionOf('dockerfile-utils')}, every rule an error: no problems`);
    for (const p of dockerfilePolicy(text)) problem('dockerfile-policy', dockerfile, p.message, p.line);
    if (!countOf('dockerfile-policy'))
      report.passed.push(
        `${display(dockerfile)}: policy (tagged bases, Node of .nvmrc, non-root USER, HEALTHCHECK, exec-form CMD, apt-get hygiene, COPY not ADD, production dependencies only)`,
      );
  }
  return report;
}

/** The Node major version the project is built, tested and shipped on (.nvmrc at the repository root). */
export function nodeMajorOfNvmrc(root = repoRoot): number | undefined {
  const file = join(root, '.nvmrc');
  if (!existsSync(file)) return undefined;
  return Number(/^v?(\d+)/.exec(readFileSync(file, 'utf8').trim())?.[1]) || undefined;
}

/** This project's Dockerfile rules, in the spirit of hadolint's (which cannot be installed here). */
export function dockerfilePolicy(text: string, nodeMajor = nodeMajorOfNvmrc()): { line: number; message: string }[] {
  const out: { line: number; message: string }[] = [];
  const df = DockerfileParser.parse(text);
  const lineOf = (i: Instruction) => i.getRange().start.line + 1;
  const stages = df.getFROMs().map((from) => ({ from, name: from.getBuildStage(), instructions: [] as Instruction[] }));
  if (!stages.length) return [{ line: 1, message: 'no FROM instruction' }];
  for (const i of df.getInstructions()) {
    const stage = [...stages].reverse().find((s) => s.from.getRange().start.line <= i.getRange().start.line);
    stage?.instructions.push(i);
  }
  const stageNames = new Set(stages.map((s) => s.name).filter((n): n is string => !!n));

  for (const { from } of stages) {
    const image = from.getExpandedArguments()[0]?.getValue() ?? '';
    if (stageNames.has(image) || image === 'scratch') continue;
    const lastPart = image.split('/').pop() ?? '';
    const tag = image.includes('@') ? 'digest' : lastPart.includes(':') ? lastPart.split(':').pop() : undefined;
    if (!tag) out.push({ line: lineOf(from), message: `base image ${image} has no tag: pin one` });
    else if (tag === 'latest') out.push({ line: lineOf(from), message: `base image ${image} uses "latest": pin a version` });
    const node = /^(?:(?:docker\.io\/)?library\/)?node:(\d+)/.exec(image);
    if (node && nodeMajor !== undefined && Number(node[1]) !== nodeMajor)
      out.push({ line: lineOf(from), message: `base image ${image} runs Node ${node[1]}, but the project runs on Node ${nodeMajor} (.nvmrc)` });
  }

  for (const i of df.getInstructions()) {
    const keyword = i.getKeyword();
    const args = i.getArgumentsContent() ?? '';
    if (keyword === 'ADD') out.push({ line: lineOf(i), message: 'use COPY, not ADD, for files from the build context' });
    if (keyword !== 'RUN') continue;
    if (/(^|[\s;&|])sudo\s/.test(args)) out.push({ line: lineOf(i), message: 'sudo in RUN: the build already runs as root' });
    if (/apt-get\s+(dist-)?upgrade/.test(args)) out.push({ line: lineOf(i), message: 'apt-get upgrade in RUN: take updates through the base image tag' });
    if (/apt-get\s+(\S+\s+)*install\b/.test(args)) {
      if (!/apt-get\s+(\S+\s+)*update\b/.test(args))
        out.push({ line: lineOf(i), message: 'apt-get install without apt-get update in the same RUN (a cached, stale package list)' });
      if (!/\s(-y|--yes|--assume-yes|-[a-z]*y[a-z]*)\b/.test(args)) out.push({ line: lineOf(i), message: 'apt-get install without -y' });
      if (!args.includes('--no-install-recommends')) out.push({ line: lineOf(i), message: 'apt-get install without --no-install-recommends' });
      if (!/rm -rf \/var\/lib\/apt\/lists/.test(args))
        out.push({ line: lineOf(i), message: 'apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN' });
    }
  }

  const final = stages[stages.length - 1];
  const finalLine = lineOf(final.from);
  const users = final.instructions.filter((i) => i.getKeyword() === 'USER');
  const user = users.length ? (users[users.length - 1].getArgumentsContent() ?? '').trim() : undefined;
  if (!user) out.push({ line: finalLine, message: 'the final stage runs as root: add USER with a non-root user' });
  else if (/^(root|0)(:|$)/.test(user)) out.push({ line: lineOf(users[users.length - 1]), message: `the final stage runs as ${user}: use a non-root user` });
  const health = final.instructions.filter((i) => i.getKeyword() === 'HEALTHCHECK');
  if (!health.length || /^NONE\b/i.test((health[health.length - 1].getArgumentsContent() ?? '').trim()))
    out.push({ line: finalLine, message: 'the final stage has no HEALTHCHECK' });
  const starts = final.instructions.filter((i) => i.getKeyword() === 'CMD' || i.getKeyword() === 'ENTRYPOINT');
  if (!starts.length) out.push({ line: finalLine, message: 'the final stage has no CMD or ENTRYPOINT' });
  for (const s of starts)
    if (!(s.getArgumentsContent() ?? '').trim().startsWith('['))
      out.push({ line: lineOf(s), message: `${s.getKeyword()} in shell form: use the exec (JSON) form so the process receives signals` });

  // production dependencies only: no dev install in the final stage; node_modules copied from a stage that dropped dev deps
  const omitsDev = (cmd: string) => /--omit[= ]dev|--production|--only[= ]prod/.test(cmd);
  for (const i of final.instructions) {
    const args = i.getArgumentsContent() ?? '';
    if (i.getKeyword() === 'RUN' && /\bnpm\s+(ci|install|i)\b/.test(args) && !omitsDev(args))
      out.push({ line: lineOf(i), message: 'npm installs dev dependencies in the final stage: add --omit=dev' });
    if (i.getKeyword() !== 'COPY' || !/node_modules/.test(args)) continue;
    const fromStage = i instanceof Copy ? (i.getFromFlag()?.getValue() ?? undefined) : undefined;
    const stage = stages.find((s) => s.name === fromStage);
    if (!fromStage) out.push({ line: lineOf(i), message: 'node_modules copied from the build context: install production dependencies in the image' });
    else if (
      stage &&
      !stage.instructions.some(
        (r) => r.getKeyword() === 'RUN' && /\bnpm\s+(ci|install|prune)\b/.test(r.getArgumentsContent() ?? '') && omitsDev(r.getArgumentsContent() ?? ''),
      )
    )
      out.push({
        line: lineOf(i),
        message: `node_modules copied from stage ${fromStage}, which never drops dev dependencies (npm prune --omit=dev or npm ci --omit=dev)`,
      });
  }
  return out;
}

/**
 * Compose variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message},
 * ${VAR:+alt}, ${VAR+alt}, $VAR, $$) against an empty shell: the value the file itself fixes.
 * fromOperator: part of the value can only come from the operator's shell (required or bare variables);
 * a stand-in of 64 "x" is used for it.
 */
export function interpolate(value: string): { value: string; fromOperator: boolean } {
  let fromOperator = false;
  const out = value.replace(
    /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_m, dollar: string | undefined, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (dollar) return '$';
      if (!name || !op || op.endsWith('?')) {
        fromOperator = true;
        return 'x'.repeat(64);
      }
      return op.endsWith('-') ? (arg ?? '') : '';
    },
  );
  return { value: out, fromOperator };
}

type EnvValue = string | null;
interface ComposeService {
  build?: string | { context?: string; dockerfile?: string };
  depends_on?: string[] | Record<string, { condition?: string }>;
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: unknown;
  healthcheck?: unknown;
}
interface ComposeFile {
  services?: Record<string, ComposeService>;
}

const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A service's environment, map or list form; null: passed through from the shell (`- NAME` / `NAME:`). */
export function environmentOf(environment: ComposeService['environment']): Record<string, EnvValue> {
  const env: Record<string, EnvValue> = {};
  if (Array.isArray(environment)) {
    for (const entry of environment) {
      const eq = String(entry).indexOf('=');
      if (eq < 0) env[String(entry)] = null;
      else env[String(entry).slice(0, eq)] = String(entry).slice(eq + 1);
    }
  } else if (isObject(environment)) {
    for (const [k, v] of Object.entries(environment)) env[k] = v === null || v === undefined ? null : String(v);
  }
  return env;
}

/** The line of the key (map entry) or item (sequence, or `KEY=value` string) at a path, when it can be found. */
function nodeLine(doc: Document, lines: LineCounter, path: (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item =
        typeof seg === 'number' ? node.items[seg] : node.items.find((i) => isScalar(i) && (String(i.value) === seg || String(i.value).startsWith(`${seg}=`)));
      if (!item) break;
      offset = isScalar(item) ? item.range?.[0] : (item as { range?: [number] }).range?.[0];
      node = item;
    } else break;
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

function main(): void {
  const arg = (flag: string) => {
    const i = process.argv.indexOf(flag);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const report = checkDocker({ composeFile: arg('--compose'), dockerfile: arg('--dockerfile'), service: arg('--service') });
  for (const line of report.passed) process.stdout.write(`ok    ${line}\n`);
  for (const line of report.skipped) process.stdout.write(`skip  ${line}\n`);
  for (const p of report.problems) process.stdout.write(`FAIL  ${p.file}${p.line ? `:${p.line}` : ''} [${p.check}] ${p.message}\n`);
  process.stdout.write(report.problems.length ? `docker check failed: ${report.problems.length} problem(s)\n` : 'docker check passed\n');
  process.exitCode = report.problems.length ? 1 : 0;
}

if (require.main === module) main();
