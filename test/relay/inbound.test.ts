import { describe, expect, it } from 'vitest';
import { FRAMES_PER_TURN, InboundGate } from '../../relay/inbound.js';

const turn = () => new Promise((r) => setImmediate(r));

function makeGate(maxInflight: number) {
  const ran: string[] = [];
  const pending: Array<() => void> = [];
  const socket = {
    paused: false,
    pause() {
      socket.paused = true;
    },
    resume() {
      socket.paused = false;
    },
  };
  const gate = new InboundGate(socket, maxInflight, (text) => {
    ran.push(text);
    if (!text.startsWith('E')) return undefined;
    return new Promise<void>((r) => pending.push(r));
  });
  return { gate, ran, pending, socket };
}

describe('InboundGate', () => {
  it('runs frames at once, in order, while within budget', () => {
    const { gate, ran, socket } = makeGate(4);
    for (const f of ['E1', 'R1', 'E2']) gate.push(f);
    expect(ran).toEqual(['E1', 'R1', 'E2']);
    expect(socket.paused).toBe(false);
  });

  it('holds frames past the in-flight cap, pauses the socket, and runs them in order as work settles', async () => {
    const { gate, ran, pending, socket } = makeGate(2);
    for (const f of ['E1', 'E2', 'R1', 'E3']) gate.push(f);
    expect(ran).toEqual(['E1', 'E2']);
    expect(gate.queued).toBe(2);
    expect(socket.paused).toBe(true);
    pending.shift()!();
    await turn();
    await turn();
    expect(ran).toEqual(['E1', 'E2', 'R1', 'E3']);
    expect(gate.inflight).toBe(2);
    expect(socket.paused).toBe(false);
  });

  it('yields to other connections after FRAMES_PER_TURN frames in one turn', async () => {
    const { gate, ran } = makeGate(100);
    for (let i = 0; i < FRAMES_PER_TURN + 5; i++) gate.push(`R${i}`);
    expect(ran).toHaveLength(FRAMES_PER_TURN);
    await turn();
    await turn();
    expect(ran).toHaveLength(FRAMES_PER_TURN + 5);
  });

  it('drops queued frames once closed', async () => {
    const { gate, ran } = makeGate(1);
    for (const f of ['E1', 'R1']) gate.push(f);
    gate.close();
    gate.push('R2');
    await turn();
    expect(ran).toEqual(['E1']);
  });
});
