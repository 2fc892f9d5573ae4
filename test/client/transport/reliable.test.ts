import { describe, expect, it } from 'vitest';
import { parseLinkFrame, encodeLinkFrame } from '../../../client/transport/frames.js';
import { SeenSet, SendWindow, getSeenKey } from '../../../client/transport/reliable.js';
import { createRng } from '../../helpers/prng.js';

describe('send window', () => {
  it('numbers messages, releases them on cumulative acks and hands back the rest on failure', () => {
    const w = new SendWindow<string>();
    expect(['a', 'b', 'c', 'd'].map((m) => w.push(m))).toEqual([1, 2, 3, 4]);
    expect(w.ack(2)).toEqual(['a', 'b']);
    expect(w.ack(1)).toEqual([]);
    expect(w.ack(9)).toBeUndefined();
    expect(w.ackedSeq).toBe(2);
    expect(w.drain()).toEqual(['c', 'd']);
    expect(w.size).toBe(0);
    expect(w.push('e')).toBe(5);
  });

  it('under random acks and a failure at a random point, every message ends acked or drained exactly once', () => {
    const rnd = createRng(42).next;
    for (let run = 0; run < 200; run++) {
      const w = new SendWindow<number>();
      const settled: number[] = [];
      const n = 1 + Math.floor(rnd() * 50);
      for (let i = 0; i < n; i++) {
        w.push(i);
        if (rnd() < 0.3) settled.push(...w.ack(w.ackedSeq + Math.floor(rnd() * (w.lastSeq - w.ackedSeq + 1)))!);
      }
      settled.push(...w.drain());
      expect(settled).toEqual([...Array(n).keys()]);
    }
  });
});

describe('seen ids', () => {
  it('answers true once per key and forgets the oldest beyond its bound', () => {
    const s = new SeenSet(3);
    expect(['a', 'b', 'a', 'c', 'd'].map((k) => s.markSeen(k))).toEqual([true, true, false, true, true]);
    expect(s.size).toBe(3);
    expect(s.markSeen('a')).toBe(true);
    expect(s.markSeen('d')).toBe(false);
    expect(getSeenKey('pk', 'id')).toBe('pk:id');
  });
});

describe('link frames', () => {
  it.each([
    { t: 'hello', nonce: 'a'.repeat(64) },
    { t: 'proof', event: { id: 'x' } },
    { t: 'ready' },
    { t: 'msg', seq: 1, id: 'abc', data: '{"x":1}' },
    { t: 'ack', seq: 7 },
    { t: 'ping' },
    { t: 'pong' },
  ] as const)('round-trips %j', (frame) => {
    expect(parseLinkFrame(encodeLinkFrame(frame))).toEqual(frame);
  });

  it.each(['', 'null', '{"t":"msg","seq":0,"id":"a","data":""}', '{"t":"ack","seq":1.5}', '{"t":"hello","nonce":"short"}', '{"t":"nope"}', '[1]'])(
    'refuses %j',
    (text) => {
      expect(parseLinkFrame(text)).toBeUndefined();
    },
  );
  it('refuses binary data', () => {
    expect(parseLinkFrame(new ArrayBuffer(4))).toBeUndefined();
  });
});
