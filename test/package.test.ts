// The package as another project gets it: `npm pack`, installed from the tarball into a temporary project
// outside the repository, and docs/client.md's two-agent example run there, in Node and bundled for a browser.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_ARGS, chromiumPath } from './helpers/chromium.js';
import { ROOT, spawnRelay, type RelayProcess } from './helpers/process.js';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | Record<string, unknown>>;
  scripts: Record<string, string>;
};

let dir: string;
let project: string;
let installed: string;
let packed: string[];
let relay: RelayProcess;

/** What the example prints (a request goes to onRequest, not onMessage). */
const EXPECTED = ['found bob online', 'bob got hello bob', 'alice got bob read: HOW ARE YOU?'];

/** docs/client.md's "Two agents talking" example, pointed at `url`. */
function docsExample(url: string): string {
  const code = /## Two agents talking[\s\S]*?```js\n([\s\S]*?)```/.exec(readFileSync(join(ROOT, 'docs/client.md'), 'utf8'))![1]!;
  expect(code).toContain("from 'roost/client/node'");
  expect(code).toContain("'ws://127.0.0.1:7447'");
  return code.replace("'ws://127.0.0.1:7447'", JSON.stringify(url));
}

/** Every file an `exports` entry names (types and code, every condition). */
function exportTargets(entry: string | Record<string, unknown>): string[] {
  if (typeof entry === 'string') return [entry];
  return Object.values(entry).flatMap((v) => exportTargets(v as string | Record<string, unknown>));
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, 'dist/client/node/index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'roost-consumer-'));
  // dist/ is built already (npm test builds first); `prepare` would build it again.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info!.files.map((f) => f.path);
  project = join(dir, 'app');
  mkdirSync(project);
  // npm 11 runs a dependency's install script only when the consumer allows it: allow Roost's (it must never
  // fail), deny better-sqlite3's (it downloads or compiles; the binary is copied below, as CI has no GitHub).
  const deny = { 'better-sqlite3': false, '@firebase/util': false, protobufjs: false, esbuild: false };
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', allowScripts: { roost: true, ...deny } }));
  // The registry's metadata may be fetched (CI reaches the npm registry); tarballs come from the npm cache.
  const install = await run('npm', ['install', join(dir, info!.filename), '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], {
    cwd: project,
    env: { ...process.env, npm_config_loglevel: 'warn' },
    maxBuffer: 16 << 20,
  });
  expect(install.stdout).toMatch(/roost: native signature verifier (built|not built)/);
  installed = join(project, 'node_modules', pkg.name);
  const sqliteVersion = (p: string) => (JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { version: string }).version;
  const repoSqlite = join(ROOT, 'node_modules/better-sqlite3');
  const appSqlite = join(project, 'node_modules/better-sqlite3');
  expect(sqliteVersion(appSqlite)).toBe(sqliteVersion(repoSqlite));
  mkdirSync(join(appSqlite, 'build/Release'), { recursive: true });
  copyFileSync(join(repoSqlite, 'build/Release/better_sqlite3.node'), join(appSqlite, 'build/Release/better_sqlite3.node'));
  // The relay too runs from the installed package (its migrations, dashboard and verifier come from the tarball).
  relay = await spawnRelay({ ROOST_DB: join(dir, 'relay', 'roost.db') }, [], join(installed, 'dist/relay/main.js'));
}, 180_000);

afterAll(async () => {
  relay?.child.kill('SIGTERM');
  await relay?.exited;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds dist/ with types for every export, the migrations and the dashboard, and no tests or sources', () => {
    expect(pkg.scripts.prepare).toBe('npm run build');
    for (const [subpath, entry] of Object.entries(pkg.exports)) {
      for (const target of exportTargets(entry)) expect(packed, `${subpath} → ${target}`).toContain(target.replace(/^\.\//, ''));
    }
    for (const f of ['dist/cli/main.js', 'migrations/0001_events.sql', 'relay/dashboard/index.html', 'native/build.mjs', 'native/schnorr.c']) {
      expect(packed).toContain(f);
    }
    expect(packed.filter((f) => /^(test|bench|dist\/test|dist\/bench)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
  });

  it('every export loads in the consuming project, and its types resolve for TypeScript', async () => {
    const names = Object.keys(pkg.exports)
      .filter((k) => k !== './package.json')
      .map((k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`));
    const script = `for (const n of ${JSON.stringify(names)}) { const m = await import(n); console.log(n, Object.keys(m).length > 0); }`;
    const loaded = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project });
    expect(loaded.stdout.trim().split('\n')).toEqual(names.map((n) => `${n} true`));
    writeFileSync(
      join(project, 'check.ts'),
      `import { createNodeAgent, type Agent } from 'roost/client/node';
import { createAgent, Identity, type AgentOptions } from 'roost/client';
import { buildRelay } from 'roost/relay';
import { loadConfig } from 'roost/relay/config';
const options: AgentOptions = { identity: Identity.generate(), relays: ['ws://127.0.0.1:7447'] };
const agent: Agent = createNodeAgent({ home: '.', relays: options.relays });
const started: Promise<void> = agent.start({ waitForRelay: false });
// @ts-expect-error a relay list is required
createAgent({ identity: options.identity });
export const used = [started, buildRelay(loadConfig({ port: 0 }))];
`,
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const args = ['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'check.ts'];
    const checked = await run(process.execPath, [tsc, ...args], { cwd: project }).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    expect(checked.stdout).toBe('');
  }, 60_000);

  it('runs the docs two-agent example in a project that installed the tarball (Node)', async () => {
    writeFileSync(join(project, 'agents.mjs'), docsExample(relay.url));
    const { stdout } = await run(process.execPath, ['agents.mjs'], { cwd: project, timeout: 60_000 });
    expect(stdout.trim().split('\n')).toEqual(EXPECTED);
  }, 90_000);

  it('bundles roost/client for the browser and runs the same exchange in Chromium', async () => {
    // The browser variant of the example: identity and state in localStorage, one agent per prefix.
    const entry = `import { createAgent, loadOrCreateIdentity, KeyValueStore } from 'roost/client';
window.runExample = async (relays) => {
  const lines = [];
  const make = async (name) =>
    createAgent({ identity: await loadOrCreateIdentity(localStorage, name + ':identity'), relays, store: await KeyValueStore.open(localStorage, { prefix: name + ':' }) });
  const alice = await make('alice');
  const bob = await make('bob');
  bob.onRequest((req) => 'bob read: ' + req.content.toUpperCase());
  bob.onMessage((m) => lines.push('bob got ' + (m.type === 'dm' ? m.content : m.event.kind)));
  await bob.start();
  await bob.publishCard({ name: 'bob', description: 'shouts back', capabilities: ['shout'], version: '1.0.0' });
  await alice.start();
  const [found] = await alice.discover({ capabilities: ['shout'] });
  lines.push('found ' + found.name + ' ' + found.presence);
  await alice.send(found.pubkey, 'hello bob');
  const answer = await alice.request(found.pubkey, 'how are you?', { timeoutMs: 10000 });
  lines.push('alice got ' + answer.content);
  await alice.close();
  await bob.close();
  return lines;
};
`;
    writeFileSync(join(project, 'browser-entry.mjs'), entry);
    // esbuild resolves 'roost/client' from the project's node_modules, through the package's exports map.
    await build({
      absWorkingDir: project,
      entryPoints: ['browser-entry.mjs'],
      outfile: join(project, 'bundle.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      logLevel: 'silent',
    });
    const bundle = readFileSync(join(project, 'bundle.js'));
    const page = `<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>`;
    const server: Server = createServer((req, res) => {
      if (req.url === '/bundle.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      else res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS });
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
      await tab.waitForFunction(() => typeof (window as unknown as { runExample?: unknown }).runExample === 'function');
      const lines = await tab.evaluate((url) => (window as unknown as { runExample: (r: string[]) => Promise<string[]> }).runExample([url]), relay.url);
      expect(lines).toEqual(EXPECTED);
    } finally {
      await browser?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 90_000);
});
