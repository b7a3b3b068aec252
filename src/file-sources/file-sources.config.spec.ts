import { ConfigError, loadConfig } from '../config/app-config';
import { loadAppConfig } from '../feature-configs';
import { loadFileSourcesConfig, parseFileSources } from './file-sources.config';

const parse = (sources: string, passwords?: string) => {
  const problems: string[] = [];
  const out = parseFileSources(sources, passwords, problems);
  return { out, problems };
};

describe('FILE_SOURCES', () => {
  it('parses smb, file and s3 sources in order, passwords percent-decoded', () => {
    const { out, problems } = parse(
      'share=smb://hyperx@10.0.0.5/files, mnt = file:///mnt/hcm%20files/ ,drop=s3:///hcm-drop/incoming/isos,other=s3://AKIA@minio.other:9100/bkt?ssl=true,dom=smb://CORP%3Bsvc@fs.corp:4445/共享/镜像%20目录',
      'share=Hyper%2CX%3D1%25,other=s3cret,dom=pw',
    );
    expect(problems).toEqual([]);
    expect(out).toEqual([
      { name: 'share', kind: 'smb', host: '10.0.0.5', port: 445, share: 'files', root: '', user: 'hyperx', domain: undefined, password: 'Hyper,X=1%' },
      { name: 'mnt', kind: 'dir', root: '/mnt/hcm files' },
      { name: 'drop', kind: 'bucket', bucket: 'hcm-drop', prefix: 'incoming/isos', store: 'service' },
      {
        name: 'other',
        kind: 'bucket',
        bucket: 'bkt',
        prefix: '',
        store: { endPoint: 'minio.other', port: 9100, useSSL: true, accessKey: 'AKIA', secretKey: 's3cret', region: 'us-east-1' },
      },
      { name: 'dom', kind: 'smb', host: 'fs.corp', port: 4445, share: '共享', root: '镜像 目录', user: 'svc', domain: 'CORP', password: 'pw' },
    ]);
  });

  it('refuses bad entries, naming the key and never a password', () => {
    const secret = 'TopSecret-123';
    const { problems } = parse(
      `Bad=smb://u@h/s,a=smb://u:${secret}@h/s,b=smb://u@h/s,c=ftp://h/x,d=file://relative/x,e=smb://u@h/s/a%5Cb,f=s3:///B,g=smb://u@h,b=file:///x`,
      `a=${secret},zz=${secret},g=%ZZ${secret}`,
    );
    const text = problems.join('\n');
    expect(text).not.toContain(secret);
    expect(text).toMatch(/source "Bad": every entry must be/);
    expect(text).toMatch(/source "a": put the password in FILE_SOURCE_PASSWORDS/);
    expect(text).toMatch(/source "b": FILE_SOURCE_PASSWORDS has no password for b/);
    expect(text).toMatch(/unknown scheme ftp:/);
    expect(text).toMatch(/source "d": file:\/\/ takes no host/);
    expect(text).toMatch(/source "e": the path is not acceptable/);
    expect(text).toMatch(/source "f": s3:\/\/ needs a bucket name/);
    expect(text).toMatch(/the name b is used twice/);
    expect(text).toMatch(/FILE_SOURCE_PASSWORDS: zz is not a source/);
    expect(text).toMatch(/the password of g is not valid percent-encoding/);
  });

  it('is validated at boot with the rest of the configuration, hiding the passwords', () => {
    const base = { DATA_DIR: '/tmp/hcm-cfg-test', AUTH_JWT_SECRET: 'x'.repeat(40) };
    expect(loadFileSourcesConfig(loadAppConfig({ ...base, FILE_SOURCES: 'share=smb://u@h/files', FILE_SOURCE_PASSWORDS: 'share=pw' }).env)).toMatchObject({
      sources: [{ name: 'share', kind: 'smb', password: 'pw' }],
      timeoutMs: 30_000,
      smbclient: 'smbclient',
      maxEntries: 10_000,
    });
    let error: unknown;
    try {
      loadAppConfig({
        ...base,
        FILE_SOURCES: 'drop=s3:///bucket,share=smb://u@h/files',
        FILE_SOURCE_PASSWORDS: 'share= leading-space-secret',
        FILE_SOURCE_TIMEOUT_MS: '5',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/FILE_SOURCE_TIMEOUT_MS="5"/);
    expect(message).toMatch(/s3:\/\/\/bucket reads the images store, which needs STORAGE_DRIVER=minio/);
    expect(message).toMatch(/starts or ends with a space/);
    expect(message).not.toContain('leading-space-secret');
  });

  it('has no sources by default', () => {
    expect(loadFileSourcesConfig(loadConfig({ DATA_DIR: '/tmp/hcm-cfg-test', AUTH_JWT_SECRET: 'x'.repeat(40) }).env).sources).toEqual([]);
  });
});
