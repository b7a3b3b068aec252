import { parseCidr } from '../../common/cidr';
import { loadConfig } from '../../config/app-config';
import { UrlPolicy, UrlPolicySettings } from './url-policy';

const policy = (over: Partial<UrlPolicySettings> = {}) =>
  new UrlPolicy({ allowCidrs: [], denyCidrs: [], allowHosts: [], denyHosts: [], denyPrivate: false, ...over });

const allowed = (p: UrlPolicy, ip: string, host?: string) => p.checkAddress(ip, host).allowed;

describe('UrlPolicy', () => {
  it('denies loopback, link-local, metadata, this-network, multicast and reserved addresses by default', () => {
    const p = policy();
    for (const ip of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '169.254.169.254',
      '169.254.1.1',
      'fe80::1',
      'fe80::1%eth0',
      '0.0.0.0',
      '0.1.2.3',
      '::',
      '224.0.0.1',
      'ff02::1',
      '255.255.255.255',
      '240.0.0.1',
      'fd00:ec2::254',
      '100.100.100.200',
    ]) {
      expect({ ip, allowed: allowed(p, ip) }).toEqual({ ip, allowed: false });
    }
    expect(p.checkAddress('169.254.169.254')).toEqual({ allowed: false, reason: expect.stringContaining('cloud metadata') });
  });

  it('judges IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 forms as the IPv4 address inside', () => {
    const p = policy();
    for (const ip of ['::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254', '64:ff9b::a9fe:a9fe', '2002:7f00:0001::1', '::127.0.0.1']) {
      expect({ ip, allowed: allowed(p, ip) }).toEqual({ ip, allowed: false });
    }
    expect(allowed(p, '::ffff:8.8.8.8')).toBe(true);
  });

  it('allows public and private addresses by default, and denies private ones when asked', () => {
    const p = policy();
    for (const ip of ['8.8.8.8', '10.1.2.3', '172.16.5.5', '192.168.1.10', '100.64.0.1', 'fd12::1', '2001:db8::1']) expect(allowed(p, ip)).toBe(true);
    const strict = policy({ denyPrivate: true });
    for (const ip of ['10.1.2.3', '172.31.255.255', '192.168.1.10', '100.64.0.1', 'fd12::1', '::ffff:10.0.0.1']) {
      expect(strict.checkAddress(ip)).toEqual({ allowed: false, reason: expect.stringContaining('URL_DENY_PRIVATE') });
    }
    expect(allowed(strict, '172.32.0.1')).toBe(true);
    expect(allowed(strict, '8.8.8.8')).toBe(true);
  });

  it('lets an explicit allow override a default deny, while an explicit deny always wins', () => {
    const p = policy({ allowCidrs: ['127.0.0.0/8', '10.0.0.0/8'], denyCidrs: ['127.0.0.53/32', '10.9.0.0/16'], denyPrivate: true });
    expect(allowed(p, '127.0.0.1')).toBe(true);
    expect(allowed(p, '10.1.1.1')).toBe(true);
    expect(p.checkAddress('127.0.0.53')).toEqual({ allowed: false, reason: expect.stringContaining('URL_DENY_CIDRS') });
    expect(allowed(p, '10.9.1.1')).toBe(false);
    expect(allowed(p, '192.168.1.1')).toBe(false);
    expect(allowed(p, '169.254.169.254')).toBe(false);
    // explicit deny of a public range
    expect(allowed(policy({ denyCidrs: ['8.8.8.0/24'] }), '8.8.8.8')).toBe(false);
    expect(allowed(policy({ denyCidrs: ['2001:db8::/32'] }), '2001:db8::5')).toBe(false);
  });

  it('matches host names exactly or by *.suffix, case- and trailing-dot-insensitively', () => {
    const p = policy({ denyHosts: ['evil.example.com', '*.bad.test'], allowHosts: ['mirror.internal'] });
    expect(() => p.checkUrl('http://EVIL.example.com./x')).toThrow(expect.objectContaining({ code: 'URL_HOST_DENIED' }));
    expect(() => p.checkUrl('http://a.b.bad.test/x')).toThrow(expect.objectContaining({ code: 'URL_HOST_DENIED' }));
    expect(p.checkUrl('http://bad.test/x').hostname).toBe('bad.test');
    expect(p.checkUrl('http://notevil.example.com/x').hostname).toBe('notevil.example.com');
    // an allowed host may resolve into a default-denied range; a denied host never passes
    expect(allowed(p, '127.0.0.1', 'mirror.internal')).toBe(true);
    expect(allowed(p, '127.0.0.1', 'other.internal')).toBe(false);
    expect(allowed(p, '8.8.8.8', 'evil.example.com')).toBe(false);
  });

  it('accepts only http(s) URLs without credentials and checks IP literals before connecting', () => {
    const p = policy();
    expect(p.checkUrl('https://images.example.com/a.qcow2').href).toBe('https://images.example.com/a.qcow2');
    expect(p.checkUrl('http://10.1.2.3/centos.qcow2').hostname).toBe('10.1.2.3');
    for (const [url, code] of [
      ['ftp://example.com/a', 'URL_SCHEME_NOT_ALLOWED'],
      ['file:///etc/passwd', 'URL_SCHEME_NOT_ALLOWED'],
      ['gopher://x/', 'URL_SCHEME_NOT_ALLOWED'],
      ['http://user:pw@example.com/a', 'URL_CREDENTIALS_NOT_ALLOWED'],
      ['not a url', 'URL_INVALID'],
      ['http://127.0.0.1/a', 'URL_ADDRESS_DENIED'],
      ['http://2130706433/a', 'URL_ADDRESS_DENIED'], // 127.0.0.1 in decimal
      ['http://0x7f.1/a', 'URL_ADDRESS_DENIED'],
      ['http://[::1]/a', 'URL_ADDRESS_DENIED'],
      ['http://[::ffff:169.254.169.254]/latest/meta-data', 'URL_ADDRESS_DENIED'],
      ['http://169.254.169.254/latest/meta-data', 'URL_ADDRESS_DENIED'],
    ] as const) {
      expect(() => p.checkUrl(url)).toThrow(expect.objectContaining({ code }));
    }
  });

  it('is built from the service settings, which reject malformed CIDRs', () => {
    const base = { AUTH_JWT_SECRET: 'x'.repeat(32), DATA_DIR: '/tmp/hcm-policy-spec' };
    const config = loadConfig({ ...base, URL_ALLOW_CIDRS: '127.0.0.1/32, ::1', URL_DENY_PRIVATE: 'true', URL_DENY_HOSTS: 'a.test b.test' });
    expect(config.ingestion.url).toMatchObject({
      allowCidrs: ['127.0.0.1/32', '::1'],
      denyPrivate: true,
      denyHosts: ['a.test', 'b.test'],
      maxRedirects: 5,
      maxAttempts: 5,
    });
    expect(config.ingestion.maxSizeBytes).toBe(1024 ** 4);
    const p = new UrlPolicy(config.ingestion.url);
    expect(allowed(p, '127.0.0.1')).toBe(true);
    expect(allowed(p, '127.0.0.2')).toBe(false);
    expect(() => loadConfig({ ...base, URL_DENY_CIDRS: '10.0.0.0/33,banana' })).toThrow(/URL_DENY_CIDRS: not a CIDR or IP address: 10.0.0.0\/33, banana/);
    expect(() => loadConfig({ ...base, STORAGE_DRIVER: 'minio' })).toThrow(/MINIO_ENDPOINT: required/);
    expect(parseCidr('fe80::/10')).toMatchObject({ family: 6, prefix: 10 });
  });
});
