import { isIP } from 'node:net';
import { Cidr, cidrContains, normaliseIp, parseCidr, parseIp } from '../../common/cidr';
import type { UrlFetchConfig } from '../../config/app-config';
import { IngestError } from '../ingestion.errors';

/**
 * What a URL download may connect to (R13). The rules, in order:
 *
 *  1. Only http and https; no credentials in the URL (user:pass@ would end up in logs and records).
 *  2. Explicit deny always wins: a host name in URL_DENY_HOSTS, or an address in URL_DENY_CIDRS.
 *  3. Explicit allow comes next: an address in URL_ALLOW_CIDRS, or a host name in URL_ALLOW_HOSTS, is
 *     allowed even when rule 4 or 5 would refuse it.
 *  4. Denied by default: loopback, link-local (with cloud metadata 169.254.169.254), "this network"
 *     0.0.0.0/8, multicast, broadcast, reserved, unspecified, and the other cloud metadata addresses.
 *  5. Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10 CGNAT, fc00::/7) are allowed, because
 *     on-premise image servers live there, unless URL_DENY_PRIVATE=true.
 *  6. Everything else is allowed.
 *
 * Host name lists take exact names (`images.example.com`) or a wildcard for subdomains
 * (`*.example.com`, which does not match `example.com` itself); matching ignores case and a trailing dot.
 *
 * The address rules apply to the address actually connected to: url-fetcher resolves names through a
 * lookup hook that checks every address DNS returns, on every connection and after every redirect, so
 * neither DNS rebinding nor a redirect reaches a denied address. IPv4-mapped IPv6 addresses
 * (::ffff:127.0.0.1) and NAT64/6to4 addresses embedding an IPv4 address are judged as that IPv4 address.
 */
export type UrlPolicySettings = Pick<UrlFetchConfig, 'allowCidrs' | 'denyCidrs' | 'allowHosts' | 'denyHosts' | 'denyPrivate'>;

interface NamedRange {
  cidr: Cidr;
  label: string;
}

const range = (text: string, label: string): NamedRange => ({ cidr: parseCidr(text)!, label });

/** Rule 4. The order matters only for the message: the more specific label comes first. */
export const DEFAULT_DENIED_RANGES: readonly NamedRange[] = [
  range('169.254.169.254/32', 'the cloud metadata address'),
  range('100.100.100.200/32', 'a cloud metadata address'),
  range('fd00:ec2::254/128', 'a cloud metadata address'),
  range('127.0.0.0/8', 'a loopback address'),
  range('::1/128', 'a loopback address'),
  range('169.254.0.0/16', 'a link-local address'),
  range('fe80::/10', 'a link-local address'),
  range('0.0.0.0/8', 'a "this network" address'),
  range('::/128', 'the unspecified address'),
  range('::/96', 'an IPv4-compatible IPv6 address'),
  range('224.0.0.0/4', 'a multicast address'),
  range('ff00::/8', 'a multicast address'),
  range('255.255.255.255/32', 'the broadcast address'),
  range('240.0.0.0/4', 'a reserved address'),
];

/** Rule 5. */
export const PRIVATE_RANGES: readonly NamedRange[] = [
  range('10.0.0.0/8', 'a private address'),
  range('172.16.0.0/12', 'a private address'),
  range('192.168.0.0/16', 'a private address'),
  range('100.64.0.0/10', 'a shared (CGNAT) address'),
  range('fc00::/7', 'a private (unique local) address'),
];

const NAT64 = parseCidr('64:ff9b::/96')!;
const SIX_TO_FOUR = parseCidr('2002::/16')!;

export type AddressDecision = { allowed: true } | { allowed: false; reason: string };

function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  while (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

function hostMatches(pattern: string, host: string): boolean {
  const p = normaliseHost(pattern);
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return p === host;
}

export class UrlPolicy {
  private readonly allowCidrs: Cidr[];
  private readonly denyCidrs: Cidr[];

  constructor(readonly settings: UrlPolicySettings) {
    const parse = (list: string[], key: string) =>
      list.map((t) => {
        const c = parseCidr(t);
        if (!c) throw new Error(`${key}: not a CIDR or IP address: ${t}`);
        return c;
      });
    this.allowCidrs = parse(settings.allowCidrs, 'URL_ALLOW_CIDRS');
    this.denyCidrs = parse(settings.denyCidrs, 'URL_DENY_CIDRS');
  }

  private hostDenied(host: string): boolean {
    return this.settings.denyHosts.some((p) => hostMatches(p, host));
  }

  private hostAllowed(host: string): boolean {
    return this.settings.allowHosts.some((p) => hostMatches(p, host));
  }

  /**
   * Checks what can be checked without connecting: syntax, scheme, credentials, host deny list, and
   * the address when the host is an IP literal. Returns the parsed URL; throws an IngestError.
   * Use it to validate a URL when the image is created, and before every request.
   */
  checkUrl(input: string | URL): URL {
    let url: URL;
    try {
      url = typeof input === 'string' ? new URL(input) : input;
    } catch {
      throw new IngestError('URL_INVALID', `Not a valid URL: ${String(input).slice(0, 200)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new IngestError('URL_SCHEME_NOT_ALLOWED', `Only http and https URLs can be downloaded, not ${url.protocol.replace(/:$/, '')}`);
    }
    if (url.username || url.password) {
      throw new IngestError('URL_CREDENTIALS_NOT_ALLOWED', 'URLs with a user name or password are not accepted');
    }
    const host = normaliseHost(url.hostname);
    if (!host) throw new IngestError('URL_INVALID', 'The URL has no host');
    if (this.hostDenied(host)) {
      throw new IngestError('URL_HOST_DENIED', `Downloads from ${host} are refused by the URL_DENY_HOSTS setting`, { details: { host } });
    }
    if (isIP(normaliseIp(host))) {
      const d = this.checkAddress(host, host);
      if (!d.allowed) throw new IngestError('URL_ADDRESS_DENIED', d.reason, { details: { host, address: normaliseIp(host) } });
    }
    return url;
  }

  /** Judges one address `host` resolved to (rules 2-6). */
  checkAddress(address: string, host?: string): AddressDecision {
    const parsed = parseIp(address);
    const shown = normaliseIp(address);
    if (!parsed) return { allowed: false, reason: `${shown} is not an IP address` };
    const h = host ? normaliseHost(host) : undefined;
    // judge an IPv4 address embedded in NAT64 / 6to4 as that address
    let ip = parsed;
    if (ip.family === 6 && cidrContains(NAT64, ip)) ip = { family: 4, value: ip.value & 0xffffffffn };
    else if (ip.family === 6 && cidrContains(SIX_TO_FOUR, ip)) ip = { family: 4, value: (ip.value >> 80n) & 0xffffffffn };
    const via = h && h !== shown ? ` (${h} resolves to it)` : '';

    const denied = this.denyCidrs.find((c) => cidrContains(c, ip) || cidrContains(c, parsed));
    if (denied) return { allowed: false, reason: `${shown}${via} is in ${denied.text}, refused by the URL_DENY_CIDRS setting` };
    if (h && this.hostDenied(h)) return { allowed: false, reason: `${h} is refused by the URL_DENY_HOSTS setting` };

    if (this.allowCidrs.some((c) => cidrContains(c, ip) || cidrContains(c, parsed))) return { allowed: true };
    if (h && this.hostAllowed(h)) return { allowed: true };

    const def = DEFAULT_DENIED_RANGES.find((r) => cidrContains(r.cidr, ip));
    if (def) {
      return { allowed: false, reason: `${shown}${via} is ${def.label}; downloads from it are refused (URL_ALLOW_CIDRS can allow it)` };
    }
    if (this.settings.denyPrivate) {
      const priv = PRIVATE_RANGES.find((r) => cidrContains(r.cidr, ip));
      if (priv) return { allowed: false, reason: `${shown}${via} is ${priv.label}; downloads from private ranges are refused (URL_DENY_PRIVATE)` };
    }
    return { allowed: true };
  }
}
