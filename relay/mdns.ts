import { networkInterfaces } from 'node:os';
import { Bonjour } from 'bonjour-service';
import { finalizeEvent } from 'nostr-tools/pure';
import type { Logger } from 'pino';
import { makeAdvertTemplate, RELAY_SERVICE_TYPE } from '../shared/mdns.js';
import type { RelayConfig } from './config.js';
import type { RelayIdentity } from './identity.js';

/** A running advertisement; `stop()` sends the goodbye packets and closes the mDNS socket. */
export interface RelayAdvert {
  /** The URL advertised. */
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * The URL to advertise: `mdnsUrl` when set, else ws://HOST:port when HOST is one address, else the
 * machine's first non-internal IPv4 (127.0.0.1 when it has none).
 */
export function getAdvertUrl(config: Pick<RelayConfig, 'mdnsUrl' | 'host'>, port: number): string {
  if (config.mdnsUrl) return config.mdnsUrl;
  const wildcard = config.host === '' || config.host === '0.0.0.0' || config.host === '::';
  let host = config.host === 'localhost' ? '127.0.0.1' : config.host;
  if (wildcard) {
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    host = lan?.address ?? '127.0.0.1';
  }
  return `ws://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Advertises the relay with DNS-SD over mDNS (docs/protocol.md#local-discovery): service type
 * `_nostr-relay._tcp`, TXT `url`, `pubkey`, and `ts`/`sig`, the relay key's signature over the URL,
 * so a listener can check the answer names the address it came from and the key its NIP-11 states.
 */
export function startRelayAdvert(opts: {
  config: Pick<RelayConfig, 'mdnsUrl' | 'host' | 'name'>;
  identity: RelayIdentity;
  port: number;
  log: Logger;
  now?: () => number;
}): RelayAdvert {
  const url = getAdvertUrl(opts.config, opts.port);
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const proof = finalizeEvent(makeAdvertTemplate(RELAY_SERVICE_TYPE, url, now()), opts.identity.secretKey);
  const log = opts.log.child({ module: 'mdns' });
  const bonjour = new Bonjour(undefined, (err: Error) => log.warn({ err: err.message }, 'mDNS error'));
  const service = bonjour.publish({
    // Instance names must be unique on the link: the key's first characters tell two relays apart.
    name: `${opts.config.name.slice(0, 40)} ${opts.identity.pubkey.slice(0, 8)}`,
    type: RELAY_SERVICE_TYPE,
    port: opts.port,
    txt: { url, pubkey: opts.identity.pubkey, ts: String(proof.created_at), sig: proof.sig },
  });
  service.on('error', (err: Error) => log.warn({ err: err.message }, 'mDNS advertisement failed'));
  log.info({ url }, 'advertising on the local network (mDNS)');
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        bonjour.unpublishAll(() => bonjour.destroy(() => resolve()));
      }),
  };
}
