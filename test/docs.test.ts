import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../relay/config.js';

// Docs follow the code: every config key is in the README table with its current default.
describe('README configuration table', () => {
  it('lists every key with its environment name and default (run scripts/config-docs.mjs)', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const c of describeConfig()) {
      expect(readme, `README lacks ${c.env}`).toContain(`| \`${c.env}\` | \`${c.flag}\` | \`${JSON.stringify(c.default).replace(/\|/g, '\\|')}\` |`);
    }
  });
});
