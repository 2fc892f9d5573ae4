import { afterEach, describe, expect, it } from 'vitest';
import { getIceServers } from '../../client/transport/ice.js';
import { loadConfig, readConfigSources } from '../../relay/config.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';

async function nip11(t: TestRelay): Promise<Record<string, unknown>> {
  const res = await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } });
  return (await res.json()) as Record<string, unknown>;
}

// The relay advertises STUN/TURN servers for agents' direct links in NIP-11; agents read them back.
describe('NIP-11 ice_servers', () => {
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('is absent by default', async () => {
    t = await startRelay();
    const info = await nip11(t);
    expect(info).not.toHaveProperty('ice_servers');
    expect(getIceServers(info)).toEqual([]);
  });

  it('carries the configured servers, and the client reads them back', async () => {
    const servers = [{ urls: ['stun:stun.example.test:3478'] }, { urls: 'turn:turn.example.test:3478?transport=udp', username: 'u', credential: 'p' }];
    t = await startRelay({ iceServers: JSON.stringify(servers) });
    const info = await nip11(t);
    expect(info.ice_servers).toEqual(servers);
    expect(getIceServers(info)).toEqual(servers);
  });

  it.each([
    ['', []],
    ['stun:a.example.test:3478, stun:b.example.test:3478', [{ urls: ['stun:a.example.test:3478', 'stun:b.example.test:3478'] }]],
    ['[{"urls":"turns:t.example.test:5349","username":"x","credential":"y"}]', [{ urls: 'turns:t.example.test:5349', username: 'x', credential: 'y' }]],
  ])('reads ROOST_ICE_SERVERS=%j', (env, expected) => {
    expect(loadConfig(readConfigSources({ ROOST_ICE_SERVERS: env })).iceServers).toEqual(expected);
  });

  it.each(['[not json', 'http://example.test', '[{"urls":[]}]', '{"urls":"stun:x"}'])('refuses %j with ROOST_ERR_CONFIG', (env) => {
    expect(() => loadConfig(readConfigSources({ ROOST_ICE_SERVERS: env }))).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
  });

  it('ignores a malformed advertisement on the client side', () => {
    expect(getIceServers({ ice_servers: [{ urls: 'http://nope' }] })).toEqual([]);
    expect(getIceServers({ ice_servers: 'stun:x' })).toEqual([]);
    expect(getIceServers(null)).toEqual([]);
  });
});
