import { describe, expect, it } from 'vitest';
import { mailboxFigures } from '../../../relay/app.js';

// The dashboard samples the mailbox backlog about once a second; the read walks every agent's mail, so
// with many agents it is paced by its own cost: at most 1 % of the relay's time.
describe('dashboard backlog sampler', () => {
  it('a read that took d ms is not repeated for 100·d ms; the last figures are shown meanwhile', () => {
    let clock = 0;
    let reads = 0;
    const sample = mailboxFigures(
      {
        backlog: () => {
          reads++;
          clock += 20; // a read over many agents' mail
          return { agents: reads, waiting: 0, undelivered: 0 };
        },
      },
      () => undefined,
      () => clock,
    );
    expect(sample().agents).toBe(1);
    for (let t = 0; t < 19; t++) {
      clock += 100; // sampled about every 100 ms of relay time: reads skipped until 2,020
      expect(sample().agents).toBe(1);
    }
    clock = 2020;
    expect(sample().agents).toBe(2);
    expect(reads).toBe(2);
  });

  it('cheap reads are taken every time they are asked for', () => {
    let clock = 0;
    let reads = 0;
    const sample = mailboxFigures(
      { backlog: () => ({ agents: ++reads, waiting: 0, undelivered: 0 }) },
      () => undefined,
      () => clock,
    );
    for (let i = 1; i <= 5; i++) {
      clock += 1000;
      expect(sample().agents).toBe(i);
    }
  });
});
