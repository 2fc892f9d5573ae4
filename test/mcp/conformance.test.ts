import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';
import { startRelay } from '../helpers/relay.js';
import { tempDir } from '../client/helpers.js';
import { startHttpBridge } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HERE = join(ROOT, 'test/mcp/conformance');
const SUITE = join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');

/** Scenarios about the protocol itself, not the suite's fixtures: every one must pass. */
const GENERAL = [
  'server-initialize',
  'ping',
  'logging-set-level',
  'tools-list',
  'tools-call-error',
  'resources-list',
  'server-sse-multiple-streams',
  'dns-rebinding-protection',
];

describe('@modelcontextprotocol/conformance against roost mcp --http', () => {
  it('general scenarios pass; only the fixture scenarios in expected-failures.yaml fail', { timeout: 120_000 }, async () => {
    const relay = await startRelay();
    cleanups.push(() => relay.close());
    const home = tempDir('roost-mcp-');
    cleanups.push(home.cleanup);
    const bridge = await startHttpBridge(home.dir, [relay.url]);
    cleanups.push(() => bridge.close());
    const out = mkdtempSync(join(tmpdir(), 'roost-conformance-'));
    cleanups.push(() => rmSync(out, { recursive: true, force: true }));
    // The suite's own DNS-rebinding check wants a localhost URL; the listener is 127.0.0.1.
    const url = bridge.url.replace('127.0.0.1', 'localhost');
    const node20 = Number(process.versions.node.split('.')[0]) < 22 ? ['--import', join(HERE, 'node20-register.mjs')] : [];
    const args = [...node20, SUITE, 'server', '--url', url, '--expected-failures', join(HERE, 'expected-failures.yaml'), '-o', out];
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      p.stdout.on('data', (d: Buffer) => (output += d.toString()));
      p.stderr.on('data', (d: Buffer) => (output += d.toString()));
      p.on('exit', (c) => resolve({ code: c, output }));
    });
    expect(output, output).toContain('Baseline check passed: all failures are expected.');
    expect(code, output).toBe(0);
    // Each general scenario ran and every one of its checks succeeded (or was informational).
    const ran = readdirSync(out);
    for (const name of GENERAL) {
      const dir = ran.find((d) => d.startsWith(`server-${name}-`));
      expect(dir, `${name} ran`).toBeDefined();
      const checks = JSON.parse(readFileSync(join(out, dir!, 'checks.json'), 'utf8')) as Array<{ id: string; status: string; errorMessage?: string }>;
      const bad = checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'INFO');
      expect(bad, name).toEqual([]);
      expect(
        checks.some((c) => c.status === 'SUCCESS'),
        name,
      ).toBe(true);
    }
  });
});
