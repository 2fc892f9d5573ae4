import { afterAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { runCli as cli, tempDir } from './helpers.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('roost agent task', () => {
  it('two agents do a task end to end from the shell: request, offer, accept, update, result', async () => {
    const relay: TestRelay = await startRelay();
    cleanups.push(() => relay.close());
    const a = tempDir();
    const b = tempDir();
    cleanups.push(a.cleanup, b.cleanup);
    const env = { ROOST_RELAYS: relay.url };
    const asA = (...args: string[]) => cli(['--home', a.dir, ...args], env);
    const asB = (...args: string[]) => cli(['--home', b.dir, ...args], env);
    await asA('keygen');
    await asB('keygen');

    expect((await asA('task', 'request', 'the paper')).code).toBe(2); // no --capability
    const req = await asA('task', 'request', '--capability', 'summarise', '--deadline', '600', '--json', 'the', 'paper');
    expect(req.code).toBe(0);
    const task = req.json()[0].id as string;
    const offer = (await asB('task', 'offer', task, '--note', 'I read fast', '--json')).json()[0].id as string;
    const status = await asA('task', 'status', task);
    expect(status.stdout).toContain(`offer ${offer}`);
    expect(status.stdout).toContain('submitted');

    // B cannot accept its own offer: the relay refuses (exit 1, coded).
    const forged = await asB('task', 'accept', task, offer);
    expect(forged.code).toBe(1);
    expect(forged.stderr).toContain('ROOST_ERR_REFUSED');

    expect((await asA('task', 'accept', task, offer)).code).toBe(0);
    expect((await asB('task', 'update', task, 'working', '50%')).code).toBe(0);
    expect((await asB('task', 'update', task, 'completed', 'a', 'short', 'summary')).code).toBe(0);
    const result = await asA('task', 'result', task, '--timeout', '10', '--json');
    expect(result.code).toBe(0);
    expect(result.json()[0]).toMatchObject({ result: 'a short summary', state: 'completed' });
    expect(result.json()[0].steps.map((s: { state: string }) => s.state)).toEqual(['working', 'working', 'completed']);
  }, 60_000);
});
