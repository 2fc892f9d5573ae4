// Builds dist/ when it is missing or older than any source file, so `npm start` always runs current code.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['shared', 'relay', 'client', 'cli'];
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
const out = 'dist/relay/main.js';
const stale = !existsSync(out) || roots.some((r) => existsSync(r) && newest(r) > statSync(out).mtimeMs);
if (stale) {
  console.error('building dist/ ...');
  execSync('npx tsc -p tsconfig.build.json', { stdio: 'inherit' });
}
