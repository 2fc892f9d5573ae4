import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { decode as decodeNip19, npubEncode } from 'nostr-tools/nip19';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import type { NostrEvent } from '../shared/event.js';
import { makeAuthorizationHeader, makeHttpAuthTemplate } from '../shared/nip98.js';
import { parseArgs, println, type CliIo } from './args.js';

const HELP = `roost admin — manage a running relay (NIP-86, signed with NIP-98)

Usage:
  roost admin keygen --out FILE            write a new admin secret key (hex, mode 600); prints its pubkey
  roost admin pubkey --key FILE            print the pubkey of a key file (hex and npub)
  roost admin METHOD [PARAMS...] --relay URL --key FILE
                                           call a management method; prints the JSON result

The key file holds a secret key as 64 hex characters or an nsec. Its pubkey must be listed in the
relay's ROOST_ADMIN_PUBKEYS. URL is the relay's address (ws://, wss://, http:// or https://).
Environment: ROOST_ADMIN_RELAY and ROOST_ADMIN_KEY stand in for --relay and --key.

Methods: supportedmethods, banpubkey PUBKEY [REASON], unbanpubkey PUBKEY, listbannedpubkeys,
  allowpubkey PUBKEY [REASON], unallowpubkey PUBKEY, listallowedpubkeys, banevent ID [REASON],
  unbanevent ID, allowevent ID [REASON], unallowevent ID, listbannedevents, listallowedevents,
  listeventsneedingmoderation, changerelayname NAME, changerelaydescription TEXT, changerelayicon URL,
  allowkind KIND, disallowkind KIND, listallowedkinds, listdisallowedkinds, blockip IP [REASON],
  unblockip IP, listblockedips
`;

/** Reads a secret key file (hex or nsec). */
export function readSecretKey(path: string): Uint8Array {
  const text = readFileSync(path, 'utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Uint8Array.from(Buffer.from(text, 'hex'));
  if (text.startsWith('nsec1')) {
    const d = decodeNip19(text);
    if (d.type === 'nsec') return d.data;
  }
  throw new Error(`${path} does not hold a secret key (64 hex characters or an nsec)`);
}

/** The HTTP URL of a relay given as ws(s):// or http(s)://. */
export function toHttpUrl(relay: string): string {
  const url = new URL(relay);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  else if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported relay URL ${relay}`);
  return url.toString();
}

/** Parameters as the methods expect them: kinds are numbers, everything else a string. */
function methodParams(method: string, params: string[]): unknown[] {
  if (method === 'allowkind' || method === 'disallowkind') return params.map((p) => Number(p));
  return params;
}

/** Makes one signed NIP-86 call; resolves with the HTTP status and the response body. */
export async function callRelay(
  relay: string,
  sk: Uint8Array,
  method: string,
  params: unknown[],
  fetchImpl: typeof fetch = fetch,
  now = () => Math.floor(Date.now() / 1000),
): Promise<{ status: number; body: { result?: unknown; error?: string | null } }> {
  const url = toHttpUrl(relay);
  const body = JSON.stringify({ method, params });
  const payload = createHash('sha256').update(body).digest('hex');
  const auth = finalizeEvent(makeHttpAuthTemplate({ url, method: 'POST', payload, created_at: now() }), sk) as NostrEvent;
  const res = await fetchImpl(url, {
    method: 'POST',
    headers: { 'content-type': 'application/nostr+json+rpc', authorization: makeAuthorizationHeader(auth) },
    body,
  });
  const text = await res.text();
  let parsed: { result?: unknown; error?: string | null };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    parsed = { error: text.trim() || `HTTP ${res.status}` };
  }
  return { status: res.status, body: parsed };
}

/** `roost admin ...`; returns the exit code. */
export async function runAdmin(argv: readonly string[], io: CliIo, fetchImpl: typeof fetch = fetch): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, ['help']);
  } catch (err) {
    println(io.stderr, `roost admin: ${(err as Error).message}`);
    return 2;
  }
  const [command, ...params] = args.positional;
  if (!command || command === 'help' || args.options.has('help')) {
    io.stdout.write(HELP);
    return command || args.options.has('help') ? 0 : 2;
  }
  try {
    if (command === 'keygen') {
      const out = args.options.get('out');
      if (!out) throw new Error('keygen needs --out FILE');
      const sk = generateSecretKey();
      writeFileSync(out, Buffer.from(sk).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
      const pk = getPublicKey(sk);
      println(io.stdout, pk);
      println(io.stderr, `wrote ${out}; add ${pk} (${npubEncode(pk)}) to ROOST_ADMIN_PUBKEYS`);
      return 0;
    }
    const keyFile = args.options.get('key') ?? io.env.ROOST_ADMIN_KEY;
    if (!keyFile) throw new Error('--key FILE is required');
    const sk = readSecretKey(keyFile);
    if (command === 'pubkey') {
      const pk = getPublicKey(sk);
      println(io.stdout, pk);
      println(io.stdout, npubEncode(pk));
      return 0;
    }
    const relay = args.options.get('relay') ?? io.env.ROOST_ADMIN_RELAY;
    if (!relay) throw new Error('--relay URL is required');
    const { status, body } = await callRelay(relay, sk, command, methodParams(command, params), fetchImpl);
    if (status !== 200 || (body.error !== undefined && body.error !== null)) {
      println(io.stderr, `roost admin: ${command} failed (HTTP ${status}): ${body.error ?? 'no error message'}`);
      return 1;
    }
    println(io.stdout, JSON.stringify(body.result, null, 2));
    return 0;
  } catch (err) {
    println(io.stderr, `roost admin: ${(err as Error).message}`);
    return 1;
  }
}
