import { hostname as osHostname } from 'node:os';

/**
 * Which URLs name this relay, for the relay tag of NIP-42 AUTH and the `u` tag of NIP-98. The answer
 * never comes from a header: Host and X-Forwarded-Host are chosen by the client (a proxy passes the
 * client's Host on), so a relay that forwards a victim's AUTH could name itself in them. It comes from
 * the configured public URL(s), or, with none configured, from the socket the connection arrived on.
 */

/** The addresses of one accepted TCP connection, as the kernel reports them. */
export interface SocketAddresses {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
}

/** Decides whether a claimed URL names this relay, for a connection arriving on `socket`. */
export type RelayUrlCheck = (claimed: string, socket: SocketAddresses) => boolean;

/** The comparable form of a relay URL: lower-case host with its port (default ports dropped) and path without a trailing slash; the scheme is ignored (ws/http and wss/https name the same endpoint). */
export function getRelayUrlKey(url: string): string | undefined {
  try {
    const u = new URL(url.trim());
    const port =
      u.port === '' ||
      (u.port === '80' && (u.protocol === 'ws:' || u.protocol === 'http:')) ||
      (u.port === '443' && (u.protocol === 'wss:' || u.protocol === 'https:'))
        ? ''
        : `:${u.port}`;
    return u.hostname.toLowerCase() + port + u.pathname.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
}

/** Compares relay URLs by host, port and path, ignoring scheme, case of the host and a trailing slash. */
export function sameRelayUrl(a: string, b: string): boolean {
  const na = getRelayUrlKey(a);
  return na !== undefined && na === getRelayUrlKey(b);
}

/** The configured public URLs (comma-separated setting), trimmed, empty items dropped. */
export function parsePublicUrls(setting: string): string[] {
  return setting
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Why a public URL setting is unusable, or undefined when every item is a ws:// or wss:// URL. */
export function checkPublicUrls(setting: string): string | undefined {
  for (const item of parsePublicUrls(setting)) {
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      return `${JSON.stringify(item)} is not a URL`;
    }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return `${JSON.stringify(item)} must start with ws:// or wss://`;
    if (u.search || u.hash || u.username) return `${JSON.stringify(item)} must not carry a query, fragment or credentials`;
  }
  return undefined;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** Strips the IPv4-mapped IPv6 prefix. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** True for 127.0.0.0/8 and ::1 (the peer runs on this machine). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = plainAddress(address);
  return a === '::1' || /^127\./.test(a);
}

/** A host name as it appears in a URL (IPv6 literals in brackets). */
function urlHost(address: string): string {
  const a = plainAddress(address);
  return a.includes(':') ? `[${a}]` : a;
}

/**
 * The local URLs that name this relay for a connection when no public URL is configured: the
 * address and port the connection arrived on (an address of this machine, so no other relay can
 * hold it), and, when the client runs on this machine (loopback peer), `localhost`, `127.0.0.1`,
 * `[::1]` and the machine's host name on that port. For a remote client, `localhost` names its
 * own machine, so it is not accepted from one.
 */
export function getLocalRelayUrlKeys(socket: SocketAddresses, hostname = osHostname()): string[] {
  if (socket.localPort === undefined) return [];
  const names = new Set<string>();
  if (socket.localAddress !== undefined) names.add(urlHost(socket.localAddress).toLowerCase());
  if (isLoopbackAddress(socket.remoteAddress)) {
    for (const n of LOOPBACK_NAMES) names.add(n);
    if (hostname) {
      names.add(hostname.toLowerCase());
      if (!hostname.includes('.')) names.add(`${hostname.toLowerCase()}.local`);
    }
  }
  return [...names].map((n) => `${n}:${socket.localPort}`);
}

/**
 * Builds the check used by NIP-42 and NIP-98: with public URLs configured, a claimed URL must be one
 * of them (whatever the headers or the socket); with none, it must be one of the local URLs above.
 */
export function createRelayUrlCheck(publicUrls: readonly string[], hostname = osHostname()): RelayUrlCheck {
  const configured = new Set(publicUrls.map(getRelayUrlKey).filter((k): k is string => k !== undefined));
  if (configured.size > 0) return (claimed) => configured.has(getRelayUrlKey(claimed) ?? '\0');
  return (claimed, socket) => {
    const key = getRelayUrlKey(claimed);
    return key !== undefined && getLocalRelayUrlKeys(socket, hostname).includes(key);
  };
}
