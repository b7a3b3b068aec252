import { ConsoleLogger, Logger } from '@nestjs/common';
import { requestContext } from '../common/request-context';
import { JsonLogger, redact } from './json-logger';

describe('JsonLogger', () => {
  it('writes one JSON object per line with level, context and the correlation id, honouring the level', () => {
    const lines: string[] = [];
    const log = new JsonLogger('log', (l) => lines.push(l));
    requestContext.run({ correlationId: 'corr-1' }, () => log.log('hello', 'Ctx'));
    log.debug('not shown');
    log.warn({ msg: 'structured', imageId: 'i1' }, 'Ingest');
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { time: expect.any(String), level: 'log', context: 'Ctx', correlationId: 'corr-1', msg: 'hello' },
      { time: expect.any(String), level: 'warn', context: 'Ingest', msg: 'structured', imageId: 'i1' },
    ]);
  });

  it('never lets a secret through', () => {
    expect(redact('Authorization: Bearer eyJabc.def.ghi')).toBe('Authorization: Bearer [redacted]');
    expect(redact('fetch http://admin:s3cr3t@10.0.0.1/x failed')).toBe('fetch http://admin:[redacted]@10.0.0.1/x failed');
    expect(redact('password=hunter2 user=bob')).toBe('password=[redacted] user=bob');
    expect(redact('{"secretKey":"abc","MINIO_SECRET_KEY":"xyz"}')).not.toMatch(/abc|xyz/);
    const lines: string[] = [];
    new JsonLogger('log', (l) => lines.push(l)).error('smbclient failed: password=topsecret', 'Smb');
    expect(lines[0]).not.toContain('topsecret');
  });
});

describe('JsonLogger through the Nest Logger API: no secret at any level, whatever the shape', () => {
  const SECRETS = [
    'hunter2-pw',
    'eyJhbGciOi.tok.sig',
    'AKIAXXXSECRETKEY',
    'minio-secret-value',
    'smb-pass-9',
    'cookie-val-7',
    'url-pass-3',
    'YmFzaWNzZWNyZXQ6cHc=',
    'deep-secret-5',
    'err-token-6',
  ];
  const chunks: string[] = [];
  // the pino destination: every byte the logger writes, errors (stderr) and the rest (stdout) alike
  const logger = new JsonLogger('verbose', (line) => chunks.push(line));
  beforeAll(() => Logger.overrideLogger(logger));
  afterAll(() => Logger.overrideLogger(new ConsoleLogger()));

  const shapes = (): unknown[] => {
    const err = Object.assign(new Error('upload failed for http://admin:url-pass-3@10.0.0.1/x'), {
      config: { headers: { Authorization: 'Bearer eyJhbGciOi.tok.sig' } },
      token: 'err-token-6',
    });
    return [
      { msg: 'login', user: 'bob', password: 'hunter2-pw' },
      {
        msg: 'nested',
        req: { headers: { authorization: 'Bearer eyJhbGciOi.tok.sig', cookie: 'sid=cookie-val-7' } },
        minio: { accessKey: 'AKIAXXXSECRETKEY', secretKey: 'minio-secret-value' },
      },
      { msg: 'arrays', sources: [{ name: 'smb', password: 'smb-pass-9' }, ['x', { a: { b: { c: { clientSecret: 'deep-secret-5' } } } }]] },
      { msg: 'free text', detail: 'smbclient -U bob%x password=smb-pass-9 then Authorization: Basic YmFzaWNzZWNyZXQ6cHc=' },
      err,
      'plain string with Bearer eyJhbGciOi.tok.sig and password=hunter2-pw',
      { msg: 'error inside', error: err },
    ];
  };

  it.each(['error', 'warn', 'log', 'debug', 'verbose'] as const)('writes %s lines with none of the secrets', (level) => {
    chunks.length = 0;
    const log = new Logger('SecretsTest');
    for (const m of shapes()) log[level](m);
    expect(chunks).toHaveLength(shapes().length);
    const out = chunks.join('\n');
    for (const s of SECRETS) expect(out).not.toContain(s);
    for (const line of chunks) expect(JSON.parse(line)).toMatchObject({ level, context: 'SecretsTest', time: expect.any(String) });
    // what is not secret stays readable
    expect(out).toContain('"user":"bob"');
    expect(out).toContain('upload failed for http://admin:[redacted]@10.0.0.1/x');
  });

  it('honours the level: lines below it are not written', () => {
    const lines: string[] = [];
    const warnOnly = new JsonLogger('warn', (l) => lines.push(l));
    warnOnly.log('no');
    warnOnly.debug('no');
    warnOnly.verbose('no');
    warnOnly.warn('yes');
    warnOnly.error('yes', 'at x\n    at y', 'Ctx');
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(['warn', 'error']);
    expect(JSON.parse(lines[1])).toMatchObject({ msg: 'yes', context: 'Ctx', stack: 'at x\n    at y' });
  });
});
