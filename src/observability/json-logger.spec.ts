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
