import { execSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, signEvent } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { ROOT } from '../../helpers/process.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { signFast } from './support.js';
import { authenticate } from '../../helpers/mailbox.js';
import { makeTraceparentTag } from '../../../shared/trace-context.js';

/** Debian's chromium; installed on first use when missing (the suite runs as root). */
function findChromium(): string {
  const which = () => execSync('command -v chromium || true', { shell: '/bin/sh' }).toString().trim();
  let path = which();
  if (!path) {
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium', { stdio: 'ignore', shell: '/bin/sh' });
    path = which();
  }
  if (!path) throw new Error('chromium is not installed and could not be installed');
  return path;
}

const TOKEN = 'dashboard-test-token';

describe('dashboard in a real browser', () => {
  let t: TestRelay;
  let browser: Browser;
  beforeAll(async () => {
    const executablePath = findChromium();
    t = await startRelay({ adminToken: TOKEN, name: 'Roost (load test)', traceUrl: 'https://jaeger.example/trace/{traceId}' });
    // Stand-in for the push subsystem, which is wired in separately: figures follow the load.
    let queued = 0;
    t.relay.ctx.hooks.onEventSaved.push(() => queued++);
    t.relay.operator.sources.wake = () => ({ queued, sent: Math.floor(queued * 0.9), failed: Math.floor(queued / 50), pruned: 1 });
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('shows live figures that move under load, and a chart', async () => {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1100 } });
    const consoleErrors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${t.httpUrl}/dashboard?token=${TOKEN}`);
    expect(new URL(page.url()).search).toBe(''); // the token left the address bar
    await page.waitForFunction(() => document.getElementById('live-text')?.textContent === 'live');
    const storedBefore = Number((await page.textContent('#stored'))!.replace(/,/g, ''));

    // A bounded load: three authenticated agents publish 1,800 events in paced batches, a reader
    // follows them live, and a few bad events and REQs add rejections.
    const agents = [makeKey(), makeKey(), makeKey()];
    const pubs = await Promise.all(agents.map(() => RawClient.connect(t.url)));
    await Promise.all(pubs.map((p, i) => authenticate(p, agents[i]!, t.url)));
    const reader = await RawClient.connect(t.url);
    await reader.req('live', { kinds: [1] });
    const load = Promise.all(
      pubs.map(async (p, i) => {
        for (let round = 0; round < 24; round++) {
          const batch = Array.from({ length: 25 }, (_, j) => signFast(agents[i]!, { content: `load ${round}-${j}`, tags: [['p', agents[(i + 1) % 3]!.pk]] }));
          for (const e of batch) p.send(['EVENT', e]);
          await Promise.all(batch.map((e) => p.ok(e.id)));
          if (round % 6 === 0) p.send(['EVENT', { ...signFast(agents[i]!), sig: 'f'.repeat(128) }]);
          await new Promise((r) => setTimeout(r, 120));
        }
      }),
    );

    await page.waitForFunction(() => Number(document.getElementById('eps')?.textContent?.replace(/,/g, '')) > 50, undefined, { timeout: 15_000 });
    await page.waitForFunction(() => Number(document.querySelector('#chart polyline.received')?.getAttribute('data-points')) >= 3, undefined, {
      timeout: 15_000,
    });
    // The event count is fresh on every read only while counting takes under a millisecond; on a
    // loaded machine it is refreshed every 5 s instead.
    await page.waitForFunction((before) => Number(document.getElementById('stored')?.textContent?.replace(/,/g, '')) > before, storedBefore, {
      timeout: 15_000,
    });
    expect(await page.textContent('#agents')).toBe('3');
    expect(Number(await page.textContent('#connections'))).toBe(4);
    await load;
    await page.waitForFunction(() => document.getElementById('stored')?.textContent === '1,800', undefined, { timeout: 10_000 });
    await page.waitForFunction(() => (document.getElementById('rejections')?.children.length ?? 0) > 0);
    expect(await page.textContent('#rejections')).toMatch(/invalid/);
    expect(await page.textContent('#ok-p50')).toMatch(/ms/);
    // The SQLite relay always has its mailbox ledger, so that section is live.
    expect(await page.isVisible('#mailbox-off')).toBe(false);
    expect(await page.isVisible('#wake-off')).toBe(false);
    expect(await page.textContent('#wake')).toMatch(/Queued\s*1,800/);
    expect(Number((await page.textContent('#dps'))!.replace(/,/g, ''))).toBeGreaterThanOrEqual(0);
    expect(await page.textContent('#relay-name')).toBe('Roost (load test)');

    const dir = join(ROOT, 'test-results');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
    expect(consoleErrors, consoleErrors.join('\n')).toEqual([]);
    for (const p of [...pubs, reader]) p.close();
    await page.close();
  });

  it('asks a visitor without the token to sign in, and refuses the data', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const res = await page.goto(`${t.httpUrl}/dashboard`);
    expect(res?.status()).toBe(401);
    expect(await page.isVisible('input[name=token]')).toBe(true);
    await page.screenshot({ path: join(ROOT, 'test-results', 'dashboard-login.png') });
    const wrong = await page.goto(`${t.httpUrl}/dashboard?token=nope`);
    expect(wrong?.status()).toBe(401);
    expect((await fetch(`${t.httpUrl}/dashboard/stream`)).status).toBe(401);
    expect((await fetch(`${t.httpUrl}/dashboard/figures`)).status).toBe(401);
    expect((await fetch(`${t.httpUrl}/dashboard/figures`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    await page.fill('input[name=token]', TOKEN);
    await Promise.all([page.waitForURL(`${t.httpUrl}/dashboard`), page.click('button[type=submit]')]);
    await page.waitForFunction(() => document.getElementById('live-text')?.textContent === 'live');
    await context.close();
  });

  it('links an event to its trace in the configured trace UI', async () => {
    const traceId = 'ab'.repeat(16);
    const ev = signEvent(makeKey(), { content: 'traced', tags: [makeTraceparentTag({ traceId, spanId: 'cd'.repeat(8), sampled: true })] });
    const client = await RawClient.connect(t.url);
    expect((await client.publish(ev))[2]).toBe(true);
    client.close();
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${t.httpUrl}/dashboard?token=${TOKEN}`);
    await page.fill('#trace-event', ev.id);
    await page.click('#trace-form button[type=submit]');
    const link = page.locator('#trace-answer a.trace-link');
    await link.waitFor();
    expect(await link.getAttribute('href')).toBe(`https://jaeger.example/trace/${traceId}`);
    expect(await link.textContent()).toBe(traceId);
    expect(await page.textContent('#trace-answer')).toContain('kind 1');
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
