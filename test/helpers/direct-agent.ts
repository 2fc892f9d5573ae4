import { createRumor, createSeal, createWrap, unwrapEvent } from 'nostr-tools/nip59';
import { finalizeEvent, generateSecretKey, getEventHash, getPublicKey } from 'nostr-tools/pure';
import { Relay } from 'nostr-tools/relay';
import type { EventTemplate, NostrEvent } from '../../shared/event.js';
import { systemTimers } from '../../client/backoff.js';
import { silentLogger } from '../../client/emitter.js';
import { DeliveryGate, getMessageKey } from '../../client/messaging.js';
import { createRelaySignalling } from '../../client/transport/relay-signalling.js';
import type { RtcFactory } from '../../client/transport/rtc.js';
import type { DirectIdentity } from '../../client/transport/signal.js';
import { DirectTransport, type DeliveryPath, type DirectSignalling, type DirectTransportOptions, type PeerMessage } from '../../client/transport/webrtc.js';

/**
 * A minimal agent for direct-link tests, browser-safe: signalling and the relay path go through a
 * real relay over nostr-tools' Relay (NIP-42 authenticated); the relay path is NIP-59 gift wraps of
 * the same rumor the direct path carries, so a message keeps its id whichever path takes it. Like
 * the agent's messenger, it sends through the relay what the link pool hands back, and passes
 * every message from either path through the client's DeliveryGate (in memory here).
 */
export interface MiniAgent {
  pubkey: string;
  transport: DirectTransport;
  relay: Relay;
  /** Every message handed to the application, in order. */
  received: Array<{ from: string; id: string; content: string; path: DeliveryPath }>;
  /** A chat message to `peer` (a NIP-17 rumor) as the transport carries it. */
  makeMessage(peer: string, content: string): PeerMessage;
  /** Sends a message: over the verified link, else (or when the link hands it back) gift-wrapped through the relay. */
  send(peer: string, msg: PeerMessage): Promise<DeliveryPath>;
  sendText(peer: string, content: string): Promise<DeliveryPath>;
  close(): Promise<void>;
}

/** Options of {@link startMiniAgent}. */
export interface MiniAgentOptions {
  rtc: RtcFactory | (() => Promise<RtcFactory>);
  secretKey?: Uint8Array;
  transport?: Partial<DirectTransportOptions>;
  /** Wraps the signalling (tests that tamper with what this agent signals). */
  wrapSignalling?: (s: DirectSignalling) => DirectSignalling;
  /** Wraps the identity the transport signs proofs with. */
  wrapIdentity?: (id: DirectIdentity) => DirectIdentity;
  onMessage?: (from: string, msg: PeerMessage, path: DeliveryPath) => void | Promise<void>;
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
const debugLog = env?.DIRECT_DEBUG
  ? (pk: string) => {
      const line = (level: string) => (obj: object, msg?: string) => console.log(`[${pk.slice(0, 6)}] ${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
      return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
    }
  : undefined;

/** Starts a mini agent on the relay at `url` (connected and authenticated when it resolves). */
export async function startMiniAgent(url: string, opts: MiniAgentOptions): Promise<MiniAgent> {
  const sk = opts.secretKey ?? generateSecretKey();
  const pubkey = getPublicKey(sk);
  const identity: DirectIdentity = {
    pubkey,
    sign: (t: EventTemplate) => finalizeEvent({ ...t, tags: t.tags.map((x) => [...x]) }, sk) as NostrEvent,
    exportSecretKey: () => sk.slice(),
  };
  const relay = new Relay(url);
  // Gift wraps cost ~18 ms each in pure JS: a fallback of hundreds blocks longer than the default.
  relay.publishTimeout = 60_000;
  await relay.connect();
  // A relay that challenges on demand (Roost's default) does so when a REQ needs it: ask for our gift wraps.
  const probe = relay.subscribe([{ kinds: [1059], '#p': [pubkey], limit: 1 }], { onclose: () => {} });
  for (let i = 0; i < 200 && !(relay as unknown as { challenge?: string }).challenge; i++) await new Promise((r) => setTimeout(r, 10));
  probe.close();
  await relay.auth(async (t) => finalizeEvent(t, sk));

  const signalling = createRelaySignalling(identity, [
    {
      publish: (e) => relay.publish(e),
      subscribe: (filter, onEvent) => {
        const sub = relay.subscribe([filter as never], { onevent: (e) => onEvent(e as NostrEvent) });
        return () => sub.close();
      },
    },
  ]);
  const received: MiniAgent['received'] = [];
  const gate = new DeliveryGate({ timers: systemTimers, now: Date.now, log: silentLogger });
  const handle = async (from: string, msg: PeerMessage, path: DeliveryPath) => {
    const rumor = JSON.parse(msg.data) as { id: string; pubkey: string; content: string };
    // The direct path vouches for the sender through the verified link; the rumor must agree.
    if (rumor.pubkey !== from || rumor.id !== msg.id) throw new Error('rumor does not match its sender');
    received.push({ from, id: msg.id, content: rumor.content, path });
    await opts.onMessage?.(from, msg, path);
  };
  const transport = new DirectTransport({
    identity: opts.wrapIdentity ? opts.wrapIdentity(identity) : identity,
    signalling: opts.wrapSignalling ? opts.wrapSignalling(signalling) : signalling,
    rtc: opts.rtc,
    host: {
      receive: async (from, msg) => void (await gate.pass(getMessageKey(from, msg.id), () => handle(from, msg, 'direct'), 'soon')),
      flush: () => gate.flush(),
    },
    ...(debugLog ? { log: debugLog(pubkey) } : {}),
    ...opts.transport,
  });
  const relaySend = async (peer: string, msg: PeerMessage) => {
    const rumor = JSON.parse(msg.data) as Parameters<typeof createSeal>[0];
    await relay.publish(createWrap(createSeal(rumor, sk, peer), peer));
  };
  const send = async (peer: string, msg: PeerMessage): Promise<DeliveryPath> => {
    if (await transport.send(peer, msg)) return 'direct';
    await relaySend(peer, msg);
    return 'relay';
  };
  const inbox = relay.subscribe([{ kinds: [1059], '#p': [pubkey] }], {
    onevent: (wrap) => {
      let rumor;
      try {
        rumor = unwrapEvent(wrap, sk);
        if (getEventHash(rumor) !== rumor.id) return;
      } catch {
        return;
      }
      const msg = { id: rumor.id, data: JSON.stringify(rumor) };
      void gate.pass(getMessageKey(rumor.pubkey, rumor.id), () => handle(rumor.pubkey, msg, 'relay'), 'now').catch(() => undefined);
    },
  });

  const makeMessage = (peer: string, content: string): PeerMessage => {
    const rumor = createRumor({ kind: 14, content, tags: [['p', peer]], created_at: Math.floor(Date.now() / 1000) }, sk);
    return { id: rumor.id, data: JSON.stringify(rumor) };
  };
  return {
    pubkey,
    transport,
    relay,
    received,
    makeMessage,
    send,
    sendText: (peer, content) => send(peer, makeMessage(peer, content)),
    async close() {
      transport.close();
      signalling.close();
      inbox.close();
      relay.close();
    },
  };
}
