import { afterEach, describe, expect, it } from 'vitest';
import { ClientError, createNodeAgent, type Agent } from '../../client/node/index.js';
import { freePort } from '../helpers/process.js';
import { startRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { FAST_LINK, tempDir } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function agentAt(relays: string[], link: object = {}): { agent: Agent; home: string; disconnects: Array<[string, string]> } {
  const { dir, cleanup } = tempDir();
  const agent = createNodeAgent({ home: dir, relays, heartbeatSeconds: 0, link: { ...FAST_LINK, ...link }, outbox: { retryBaseMs: 50, retryMaxMs: 300 } });
  cleanups.push(cleanup, () => agent.close());
  const disconnects: Array<[string, string]> = [];
  agent.on('disconnected', (relay, reason) => disconnects.push([relay, reason]));
  return { agent, home: dir, disconnects };
}

async function startError(agent: Agent): Promise<ClientError> {
  const err = await agent.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClientError);
  return err as ClientError;
}

describe('an unreachable relay at start', () => {
  it('start() rejects ROOST_ERR_UNREACHABLE with each cause; the agent keeps retrying and delivers what it queued once the relay is up', async () => {
    const port = await freePort();
    const dead = `ws://127.0.0.1:${port}`;
    const { agent, disconnects } = agentAt([dead, 'ws://no-such-host.invalid:7447']);
    const err = await startError(agent);
    expect(err.code).toBe('ROOST_ERR_UNREACHABLE');
    expect(err.details.causes).toEqual({
      [dead]: `connect ECONNREFUSED 127.0.0.1:${port}`,
      'ws://no-such-host.invalid:7447': expect.stringMatching(/getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/),
    });
    expect(err.message).toContain(`connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(disconnects.map(([r]) => r)).toEqual(expect.arrayContaining([dead, 'ws://no-such-host.invalid:7447']));

    // Still running: a publish queues in the outbox, and goes out once a relay listens on that port.
    const pending = agent.publish(
      { kind: 1, content: 'queued while unreachable', tags: [['t', 'unreachable']], created_at: Math.floor(Date.now() / 1000) },
      { relays: [dead] },
    );
    await waitFor(() => agent.outboxSize === 1, 'queued');
    const { dir, cleanup } = tempDir('roost-relay-');
    cleanups.push(cleanup);
    const relay = await startRelay({ port, db: `${dir}/roost.db` }, {}, dir);
    cleanups.push(() => relay.close());
    const result = await pending;
    expect(result.relays).toEqual([{ relay: dead, accepted: true, reason: '' }]);
    expect(agent.outboxSize).toBe(0);
  });

  it('start() resolves as soon as one relay is ready, while another is refused', async () => {
    const { dir, cleanup } = tempDir('roost-relay-');
    cleanups.push(cleanup);
    const relay = await startRelay({ db: `${dir}/roost.db` }, {}, dir);
    cleanups.push(() => relay.close());
    const dead = `ws://127.0.0.1:${await freePort()}`;
    const { agent } = agentAt([dead, relay.url]);
    await agent.start();
    expect(agent.connectedRelays).toEqual([relay.url]);
  });

  it('a refused upgrade (HTTP 429) reports the status text and the relay reason from the body', async () => {
    const { dir, cleanup } = tempDir('roost-relay-');
    cleanups.push(cleanup);
    const relay = await startRelay({ db: `${dir}/roost.db`, rateLimit: true, rateConnectionsPerIp: 1, rateConnectionsPerLoopback: 1 }, {}, dir);
    cleanups.push(() => relay.close());
    const first = agentAt([relay.url]);
    await first.agent.start();
    const second = agentAt([relay.url]);
    const err = await startError(second.agent);
    expect(err.code).toBe('ROOST_ERR_UNREACHABLE');
    const cause = err.details.causes?.[relay.url];
    expect(cause).toBe(
      'Unexpected server response: 429 Too Many Requests: rate-limited: more than 1 new connections per minute from your address (retry after 60)',
    );
    expect(second.disconnects[0]).toEqual([relay.url, cause]);
  });

  it('no answer at all: the first attempt fails at connectTimeoutMs', async () => {
    // a listening socket that never completes the HTTP upgrade
    const { createServer } = await import('node:net');
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => silent.close(resolve));
    });
    const url = `ws://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const { agent } = agentAt([url], { connectTimeoutMs: 300 });
    const err = await startError(agent);
    expect(err.code).toBe('ROOST_ERR_UNREACHABLE');
    expect(err.details.causes).toEqual({ [url]: 'connect timeout' });
  });
});
