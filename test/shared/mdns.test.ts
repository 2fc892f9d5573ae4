import { describe, expect, it } from 'vitest';
import { agentTxtSchema, getUrlPort, isUrlAtAddress, MAX_TXT_KEYS, parseTxt, relayTxtSchema } from '../../shared/mdns.js';

const good = { url: 'ws://192.168.1.20:7447', pubkey: 'ab'.repeat(32), ts: '1700000000', sig: 'cd'.repeat(64) };

describe('mDNS TXT records are untrusted input', () => {
  it.each([
    ['a relay advertisement', good, true],
    ['values as buffers (binary TXT)', Object.fromEntries(Object.entries(good).map(([k, v]) => [k, new TextEncoder().encode(v)])), true],
    ['wss with a path', { ...good, url: 'wss://relay.lan/nostr' }, true],
    ['an http URL', { ...good, url: 'http://192.168.1.20:7447' }, false],
    ['a javascript: URL', { ...good, url: 'javascript:alert(1)' }, false],
    ['credentials in the URL', { ...good, url: 'ws://u:p@192.168.1.20:7447' }, false],
    ['a short pubkey', { ...good, pubkey: 'ab' }, false],
    ['an uppercase signature', { ...good, sig: 'CD'.repeat(64) }, false],
    ['a timestamp that is not digits', { ...good, ts: '1e9' }, false],
    ['a value over 255 characters', { ...good, url: `ws://h/${'a'.repeat(260)}` }, false],
    ['too many keys', { ...good, ...Object.fromEntries(Array.from({ length: MAX_TXT_KEYS }, (_, i) => [`x${i}`, '1'])) }, false],
    ['not an object', 'url=ws://h', false],
    ['null', null, false],
  ])('%s', (_name, txt, ok) => {
    expect(parseTxt(relayTxtSchema, txt) !== undefined).toBe(ok);
  });

  it('an agent advertisement may omit its relay', () => {
    const { url: _u, ...rest } = good;
    expect(parseTxt(agentTxtSchema, rest)).toEqual({ pubkey: good.pubkey, ts: 1700000000, sig: good.sig });
    expect(parseTxt(agentTxtSchema, { ...rest, relay: 'ftp://x' })).toBeUndefined();
  });

  it('a URL is at an address only when its host is that address; ports default by scheme', () => {
    expect(isUrlAtAddress('ws://192.168.1.20:7447', ['192.168.1.20'])).toBe(true);
    expect(isUrlAtAddress('ws://192.168.1.21:7447', ['192.168.1.20'])).toBe(false);
    expect(isUrlAtAddress('ws://[fe80::1]:7447', ['FE80::1'])).toBe(true);
    expect(isUrlAtAddress('ws://relay.local:7447', ['192.168.1.20'])).toBe(false);
    expect([getUrlPort('ws://h'), getUrlPort('wss://h'), getUrlPort('ws://h:7447')]).toEqual([80, 443, 7447]);
  });
});
