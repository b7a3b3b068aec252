#!/usr/bin/env node
/**
 * Prints a bearer token for the configured secret.
 *   npm run token -- --sub u1 --dept d1 --role user [--name Alice] [--ttl 3600]
 * The secret is AUTH_JWT_SECRET, or (embedded default) the development secret kept under DATA_DIR
 * (./data), created here if the service has not created it yet, so the service and this command agree.
 */
const { createHmac, randomBytes } = require('node:crypto');
const { existsSync, mkdirSync, readFileSync, writeFileSync } = require('node:fs');
const { join, resolve } = require('node:path');

const ROLES = ['super_admin', 'admin', 'user', 'service'];
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const fail = (msg) => {
  process.stderr.write(
    `${msg}\nusage: npm run token -- --sub <user id> --dept <department id> --role <${ROLES.join('|')}> [--name <name>] [--ttl <seconds>]\n`,
  );
  process.exit(2);
};

const sub = opt('sub');
const dept = opt('dept');
const role = opt('role');
const ttl = Number(opt('ttl', '43200'));
if (!sub || !dept || !role) fail('--sub, --dept and --role are required');
if (!ROLES.includes(role)) fail(`--role must be one of ${ROLES.join(', ')}`);
if (!Number.isInteger(ttl) || ttl <= 0) fail('--ttl must be a positive number of seconds');

let secret = process.env.AUTH_JWT_SECRET;
if (!secret) {
  const dataDir = resolve(process.env.DATA_DIR || './data');
  const file = join(dataDir, 'dev-jwt-secret');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  }
  secret = readFileSync(file, 'utf8').trim();
}

const now = Math.floor(Date.now() / 1000);
const claims = { sub, name: opt('name', sub), dept, role, iat: now, exp: now + ttl };
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
const sig = createHmac('sha256', secret).update(unsigned).digest('base64url');
process.stdout.write(`${unsigned}.${sig}\n`);
