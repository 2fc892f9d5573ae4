import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../relay/config.js';
import { startRelay } from './helpers/relay.js';

// Docs follow the code: every config key is in the README table with its current default.
describe('README configuration table', () => {
  it('lists every key with its environment name and default (run scripts/config-docs.mjs)', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const c of describeConfig()) {
      expect(readme, `README lacks ${c.env}`).toContain(`| \`${c.env}\` | \`${c.flag}\` | \`${JSON.stringify(c.default).replace(/\|/g, '\\|')}\` |`);
    }
  });
});

// Docs read as finished text: no drafts, no references to the tracker.
describe('docs are finished text', () => {
  const files = ['README.md', ...readdirSync('docs').map((f) => `docs/${f}`)].filter((f) => f.endsWith('.md'));
  it.each(files)('%s has no "draft" and no "issue N"', (file) => {
    const text = readFileSync(file, 'utf8');
    // NIPs themselves are called drafts upstream ("draft optional"); those mentions are about NIPs, not our docs
    const lines = text.split('\n').filter((l) => /\bdraft\b|\bissues? #?\d+/i.test(l) && !/\bNIP\b.*\bdraft\b/.test(l));
    expect(lines).toEqual([]);
  });

  it('every test file the docs name exists, and they quote no test counts (which go stale)', () => {
    const tests = (readdirSync('test', { recursive: true }) as string[]).filter((f) => f.endsWith('.test.ts')).map((f) => `test/${f}`);
    const missing: string[] = [];
    const counts: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const [name] of text.matchAll(/[\w/.-]*\.test\.ts/g)) {
        const found = name.includes('/') ? existsSync(name.startsWith('.') ? join(dirname(file), name) : name) : tests.some((t) => t.endsWith(`/${name}`));
        if (!found) missing.push(`${file}: ${name}`);
      }
      for (const [count] of text.matchAll(/\b\d[\d,]* (?:tests|test files)\b/g)) counts.push(`${file}: ${count}`);
    }
    expect(missing).toEqual([]);
    expect(counts).toEqual([]);
  });

  it('the README lists every NIP the relay serves in supported_nips', async () => {
    const relay = await startRelay();
    try {
      const doc = (await (await fetch(relay.url.replace(/^ws/, 'http'), { headers: { accept: 'application/nostr+json' } })).json()) as {
        supported_nips: number[];
      };
      const line = readFileSync('README.md', 'utf8')
        .split('\n')
        .find((l) => l.includes('**A standard relay.**'));
      for (const nip of doc.supported_nips) expect(line, `README lacks NIP ${nip}`).toMatch(new RegExp(`\\b${String(nip).padStart(2, '0')}\\b`));
    } finally {
      await relay.close();
    }
  });

  it("protocol.md's NIP-11 section names every field a running relay serves", async () => {
    const relay = await startRelay({ retention: '1:30d', iceServers: 'stun:stun.example.org:3478', rateLimit: true });
    try {
      const doc = (await (await fetch(relay.url.replace(/^ws/, 'http'), { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, unknown>;
      const keys = new Set<string>();
      const walk = (v: unknown) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
        for (const [k, child] of Object.entries(v)) {
          keys.add(k);
          walk(child);
        }
      };
      walk(doc);
      const protocol = readFileSync('docs/protocol.md', 'utf8');
      const section = protocol.slice(protocol.indexOf('## NIP-11'), protocol.indexOf('\n## ', protocol.indexOf('## NIP-11') + 1));
      const missing = [...keys].filter((k) => !section.includes(`\`${k}\``));
      expect(missing).toEqual([]);
    } finally {
      await relay.close();
    }
  });
});

// Following the README tour and docs/client.md in the repository folder must not break `npm test` or leak keys.
describe('tour artefacts', () => {
  it('the docs examples pass lint where a newcomer saves them', () => {
    const dir = mkdtempSync(join(process.cwd(), '.scratch-docs-'));
    try {
      const tour = /```js\n(\/\/ tour\.mjs[\s\S]*?)```/.exec(readFileSync('README.md', 'utf8'))![1]!;
      const agents = /## Two agents talking[\s\S]*?```js\n([\s\S]*?)```/.exec(readFileSync('docs/client.md', 'utf8'))![1]!;
      writeFileSync(join(dir, 'tour.mjs'), tour);
      writeFileSync(join(dir, 'agents.mjs'), agents);
      // the folder is ignored by biome.jsonc only under .scratch; check the files explicitly with the project's settings
      execFileSync('npx', ['biome', 'check', '--error-on-warnings', '--files-ignore-unknown=true', join(dir, 'tour.mjs'), join(dir, 'agents.mjs')], {
        stdio: 'pipe',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('agent keys, agent homes and the tour file are git-ignored', () => {
    const paths = ['alice/agent.key', 'bob/agent.db', 'tour.mjs', 'somewhere/agent.key', 'data/roost.db.lock'];
    const ignored = execFileSync('git', ['check-ignore', '--no-index', ...paths], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(ignored).toEqual(paths);
  });
});
