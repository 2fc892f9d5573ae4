import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DirectMessage } from '../../client/node/index.js';
import { Mailbox } from '../../cli/mcp/mailbox.js';
import { tempDir } from '../client/helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

const dm = (id: string, content: string, relay = 'ws://a'): DirectMessage => ({
  type: 'dm',
  id,
  from: 'f'.repeat(64),
  content,
  tags: [],
  createdAt: 1_700_000_000,
  kind: 14,
  wrapId: `w${id}`,
  relay,
  seq: 1,
  requestId: undefined,
  inReplyTo: undefined,
});

describe('the bridge mailbox (mcp.db)', () => {
  it('keeps each rumor id once, lists after the cursor, acks only forward, and survives a reopen', () => {
    const home = tempDir('roost-mailbox-');
    cleanups.push(home.cleanup);
    const path = join(home.dir, 'mcp.db');
    let box = new Mailbox(path);
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    expect(box.add(dm(a, 'one'), Date.now())).toBe(true);
    expect(box.add(dm(a, 'one', 'ws://b'), Date.now())).toBe(false); // the same rumor through another relay
    expect(box.add(dm(b, 'two'), Date.now())).toBe(true);
    expect(box.list().map((e) => [e.seq, e.id])).toEqual([
      [1, a],
      [2, b],
    ]);
    expect(box.ack(1)).toBe(1);
    expect(box.ack(0)).toBe(1); // never back
    expect(box.list().map((e) => e.seq)).toEqual([2]);
    expect(box.get({ id: b.slice(0, 8) })?.seq).toBe(2);
    expect(box.get({ seq: 1 })?.message).toMatchObject({ type: 'dm', content: 'one' });
    box.close();

    box = new Mailbox(path);
    cleanups.push(() => box.close());
    expect(box.acked).toBe(1);
    expect(box.add(dm(b, 'two'), Date.now())).toBe(false); // still known after a restart
    expect(box.list().map((e) => e.id)).toEqual([b]);
    expect(box.countAfter(0)).toBe(2);
  });

  it('an id prefix shared by two messages finds neither; acknowledged mail older than 7 days is dropped at open', () => {
    const home = tempDir('roost-mailbox-');
    cleanups.push(home.cleanup);
    const path = join(home.dir, 'mcp.db');
    const box = new Mailbox(path, () => 0);
    box.add(dm(`abcdef01${'1'.repeat(56)}`, 'x'), 0);
    box.add(dm(`abcdef01${'2'.repeat(56)}`, 'y'), 0);
    box.add(dm('c'.repeat(64), 'z'), 0);
    expect(box.get({ id: 'abcdef01' })).toBeUndefined();
    box.ack(2);
    box.close();
    const later = new Mailbox(path, () => 8 * 24 * 3600 * 1000);
    cleanups.push(() => later.close());
    expect(later.countAfter(0)).toBe(1); // the unacknowledged one stays whatever its age
    expect(later.list().map((e) => e.message.type === 'dm' && e.message.content)).toEqual(['z']);
  });
});
