import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';

// Replays the Dockerfile's install and start steps in a clean clone of the committed tree (Docker
// cannot run here). About a minute with a warm npm cache; ROOST_SKIP_DOCKER_SMOKE=1 skips it.
describe.skipIf(process.env.ROOST_SKIP_DOCKER_SMOKE === '1')('Dockerfile smoke (scripts/docker-smoke.sh)', () => {
  it('installs, builds, starts with the image ENV, passes HEALTHCHECK and /ready, and stops cleanly', async () => {
    const child = spawn('bash', [join(ROOT, 'scripts/docker-smoke.sh'), ROOT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, out).toBe(0);
    expect(out).toMatch(/\/ready \{"status":"ready","schema":\d+\}/);
    expect(out).toContain('HEALTHCHECK passed');
    expect(out).toContain('stopped cleanly');
  }, 180_000);
});
