// Regenerates the README's configuration table from the one config schema (relay/config.ts).
// Usage: npm run build && node scripts/config-docs.mjs   (test/docs.test.ts checks it is current)
import { readFileSync, writeFileSync } from 'node:fs';
import { describeConfig } from '../dist/relay/config.js';

export function renderConfigTable(rows) {
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  const lines = ['| Environment | Flag | Default | Description |', '| --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| \`${r.env}\` | \`${r.flag}\` | \`${esc(JSON.stringify(r.default))}\` | ${esc(r.description)} |`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const readme = readFileSync('README.md', 'utf8');
  const start = '<!-- config:start -->';
  const end = '<!-- config:end -->';
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) throw new Error('README.md lacks the config markers');
  const next = readme.slice(0, a + start.length) + '\n' + renderConfigTable(describeConfig()) + '\n' + readme.slice(b);
  writeFileSync('README.md', next);
  console.log('README.md configuration table updated');
}
