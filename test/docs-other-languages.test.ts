import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from './helpers/relay.js';

// docs/other-languages.md's Python agent, run as written (standard library only) against a real relay.
describe('docs/other-languages.md', () => {
  let relay: TestRelay;
  let dir: string;
  beforeAll(async () => {
    relay = await startRelay();
    dir = mkdtempSync(join(tmpdir(), 'roost-python-'));
  });
  afterAll(async () => {
    await relay.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the Python example publishes (OK true) and reads its event back by sequence cursor', async () => {
    const doc = readFileSync('docs/other-languages.md', 'utf8');
    const code = /```python\n([\s\S]*?)```/.exec(doc)![1]!;
    const file = join(dir, 'roost_raw.py');
    writeFileSync(file, code);
    const out = await new Promise<string>((resolve, reject) =>
      execFile('python3', ['-I', file, relay.url], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    expect(out).toBe('OK True \nEVENT seq 1 hello from python\nEOSE cursor 1 more False\n');
  });
});
