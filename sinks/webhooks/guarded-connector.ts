// The connect-time half of the SSRF guard (the policy and the refused ranges:
// core/webhooks/url-guard.ts): every address a webhook URL's host resolves to, or its literal
// address, is checked again when a delivery connects, so DNS cannot point a registered name at an
// internal address.
import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { buildConnector } from 'undici';
import { RefusedAddressError } from '../../core/errors.ts';
import { refusedAddress } from '../../core/webhooks/url-guard.ts';
import type { GuardPolicy } from '../../core/webhooks/url-guard.ts';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A dns.lookup that refuses a name resolving to any refused address. */
export function guardedLookup(policy: GuardPolicy) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      for (const a of addresses) {
        const why = refusedAddress(a.address, policy);
        if (why) return callback(new RefusedAddressError(`refused: ${hostname} resolves to ${why}`), '');
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
      callback(null, first.address, first.family);
    });
  };
}

/** An undici connector that checks the address it connects to (literal or resolved). */
export function guardedConnector(policy: GuardPolicy, timeoutMs: number): buildConnector.connector {
  const base = buildConnector({ timeout: timeoutMs, lookup: guardedLookup(policy) } as buildConnector.BuildOptions);
  return (opts, callback) => {
    const host = opts.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const why = refusedAddress(host, policy);
      if (why) {
        callback(new RefusedAddressError(`refused: ${why}`), null);
        return;
      }
    }
    base(opts, callback);
  };
}
