import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../helpers/events.js';
import { RawClient } from '../helpers/raw-client.js';
import { spawnRelay } from '../helpers/process.js';

// The process contract other tools rely on: node dist/relay/main.js, PORT/HOST/ROOST_DB, a ready
// line with the URL, graceful shutdown on SIGTERM and SIGINT, clear refusal of bad settings.
describe('relay process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roost-proc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the database folder, serves, and stops cleanly on SIGTERM keeping what it acknowledged', async () => {
    const db = join(dir, 'nested', 'folder', 'roost.db');
    const p = await spawnRelay({ ROOST_DB: db });
    expect(p.output()).toContain(`Roost relay listening on ws://127.0.0.1:${p.port}`);
    expect(existsSync(db)).toBe(true);
    const c = await RawClient.connect(p.url);
    const k = makeKey();
    const events = Array.from({ length: 50 }, (_, i) => signEvent(k, { content: `n${i}` }));
    for (const e of events) c.send(['EVENT', e]);
    await Promise.all(events.map((e) => c.ok(e.id)));
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('stopped cleanly');

    const again = await spawnRelay({ ROOST_DB: db }, ['--log-level', 'info', '--max-limit', '1000']);
    const c2 = await RawClient.connect(again.url);
    expect((await c2.req('all', { authors: [k.pk] })).length).toBe(50);
    c2.close();
    again.child.kill('SIGINT');
    expect(await again.exited).toBe(0);
  });

  it('refuses bad configuration with a clear message and exit code 2', async () => {
    await expect(spawnRelay({ ROOST_DB: join(dir, 'x.db'), ROOST_MAX_LIMIT: 'lots' })).rejects.toThrow(
      /ROOST_MAX_LIMIT \/ --max-limit = "lots": must be a number/,
    );
    await expect(spawnRelay({ ROOST_DB: join(dir, 'y.db') }, ['--no-such-flag'])).rejects.toThrow(/unknown flag --no-such-flag/);
  });
});
