// SSRF guard for merchant webhook URLs. At registration: https only (http only to a loopback host
// when RILL_WEBHOOKS_ALLOW_HTTP is set), no credentials, no literal address in a refused range.
// At connect time (the webhooks sink's connector, sinks/webhooks/guarded-connector.ts): every
// address the host name resolves to is checked again, so DNS cannot point a registered name at an
// internal address. Refused unless allowed: loopback (allowed with RILL_WEBHOOKS_ALLOW_HTTP),
// private, CGNAT, link-local, unique-local, unspecified and multicast ranges
// (RILL_WEBHOOKS_ALLOW_PRIVATE); the cloud metadata address is refused always. Redirects are never followed (the client treats 3xx as a failed attempt).
import { BlockList, isIP } from 'node:net';

export interface GuardPolicy {
  /** http:// to loopback hosts, and loopback addresses (dev and tests). */
  allowLoopback: boolean;
  /** Private, CGNAT, link-local and unique-local ranges (a private network deployment). */
  allowPrivate: boolean;
}

export function policyFromEnv(env: NodeJS.ProcessEnv = process.env): GuardPolicy {
  const on = (v: string | undefined) => v !== undefined && v !== '' && v !== '0' && v !== 'false';
  return { allowLoopback: on(env.RILL_WEBHOOKS_ALLOW_HTTP), allowPrivate: on(env.RILL_WEBHOOKS_ALLOW_PRIVATE) };
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

const metadata = new BlockList();
metadata.addAddress('169.254.169.254', 'ipv4');
metadata.addAddress('fd00:ec2::254', 'ipv6');

const internal = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  internal.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const)
  internal.addSubnet(net, bits, 'ipv6');

/** Why an address is refused, or undefined when it may be called. */
export function refusedAddress(address: string, policy: GuardPolicy): string | undefined {
  let ip = address.replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  if (metadata.check(ip, family)) return `${ip} is a cloud metadata address`;
  if (loopback.check(ip, family)) return policy.allowLoopback ? undefined : `${ip} is a loopback address`;
  if (internal.check(ip, family)) return policy.allowPrivate ? undefined : `${ip} is in a private, link-local or reserved range`;
  return undefined;
}

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.']);

/** Check a URL a merchant registers; returns the problem, or undefined when it is acceptable. */
export function checkEndpointUrl(raw: string, policy: GuardPolicy): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (u.username || u.password) return 'credentials in the URL are not allowed';
  if (raw.length > 2048) return 'longer than 2048 characters';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const literal = isIP(host) !== 0;
  const isLoopbackHost =
    LOOPBACK_NAMES.has(host.toLowerCase()) ||
    (literal && loopback.check(host.replace(/^::ffff:/i, ''), isIP(host.replace(/^::ffff:/i, '')) === 6 ? 'ipv6' : 'ipv4'));
  if (u.protocol === 'http:') {
    if (!policy.allowLoopback) return 'only https:// URLs are allowed';
    if (!isLoopbackHost) return 'http:// is allowed only to a loopback host (RILL_WEBHOOKS_ALLOW_HTTP); use https://';
  } else if (u.protocol !== 'https:') {
    return 'only https:// URLs are allowed';
  }
  if (literal) return refusedAddress(host, policy);
  if (isLoopbackHost && !policy.allowLoopback) return `${host} is a loopback host`;
  return undefined;
}
