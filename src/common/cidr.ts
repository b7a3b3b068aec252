import { isIP } from 'node:net';

/**
 * IPv4/IPv6 CIDR parsing and matching, without dependencies. Used by the URL policy (what a download may
 * connect to) and by the config validation of the CIDR lists.
 */
export interface Cidr {
  /** the text as configured, for messages */
  text: string;
  family: 4 | 6;
  /** network address as an unsigned integer (32 or 128 bits) */
  network: bigint;
  prefix: number;
}

function ipv4ToBigInt(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6ToBigInt(ip: string): bigint {
  let text = ip;
  // a trailing dotted quad (::ffff:1.2.3.4) becomes two hextets
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v = ipv4ToBigInt(dotted[1]);
    text = text.slice(0, -dotted[1].length) + `${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(missing).fill('0'), ...tailParts];
  return parts.reduce((acc, h) => (acc << 16n) | BigInt(parseInt(h, 16)), 0n);
}

/** Strips IPv6 brackets and a zone id (`fe80::1%eth0`). */
export function normaliseIp(ip: string): string {
  let s = ip.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  return s.toLowerCase();
}

/** The address as {family, value}; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is returned as IPv4. */
export function parseIp(ip: string): { family: 4 | 6; value: bigint } | null {
  const s = normaliseIp(ip);
  const fam = isIP(s);
  if (fam === 4) return { family: 4, value: ipv4ToBigInt(s) };
  if (fam === 6) {
    const value = ipv6ToBigInt(s);
    if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
    return { family: 6, value };
  }
  return null;
}

/** Parses `10.0.0.0/8`, `fe80::/10`, or a single address (a /32 or /128). Returns null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const t = text.trim();
  const slash = t.lastIndexOf('/');
  const addr = slash >= 0 ? t.slice(0, slash) : t;
  const fam = isIP(normaliseIp(addr));
  if (fam !== 4 && fam !== 6) return null;
  // parse without the IPv4-mapped folding so that ::ffff:0:0/96 stays an IPv6 range
  const value = fam === 4 ? ipv4ToBigInt(normaliseIp(addr)) : ipv6ToBigInt(normaliseIp(addr));
  const bits = fam === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > bits) return null;
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { text: t, family: fam, network: value & mask, prefix };
}

/** True when the address lies in the range. IPv4-mapped IPv6 addresses match IPv4 ranges. */
export function cidrContains(cidr: Cidr, ip: string | { family: 4 | 6; value: bigint }): boolean {
  const a = typeof ip === 'string' ? parseIp(ip) : ip;
  if (!a || a.family !== cidr.family) return false;
  const bits = cidr.family === 4 ? 32 : 128;
  const shift = BigInt(bits - cidr.prefix);
  return a.value >> shift === cidr.network >> shift;
}

/** Splits a comma/space separated list, dropping empty entries. */
export function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}
