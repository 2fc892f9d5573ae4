import WebSocket from 'ws';
import { expect } from 'vitest';
import { waitFor } from './wait.js';

/** A bare WebSocket client that records every frame, for wire-level assertions. */
export class RawClient {
  readonly frames: unknown[][] = [];
  readonly raw: string[] = [];
  closed = false;
  closeCode: number | undefined;

  // Listeners are attached before 'open': a frame sent by the relay on connect (the NIP-42
  // challenge) can arrive in the same chunk as the upgrade response.
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      this.frames.push(JSON.parse(text) as unknown[]);
    });
    ws.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
    });
  }

  /** Opens a connection and waits until it is open. */
  static async connect(url: string, opts?: WebSocket.ClientOptions): Promise<RawClient> {
    const ws = new WebSocket(url, opts);
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Sends a JSON frame (or a raw string as is). */
  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Frames of one type (e.g. 'EVENT'), optionally for one subscription or event id. */
  of(type: string, key?: string): unknown[][] {
    return this.frames.filter((f) => f[0] === type && (key === undefined || f[1] === key));
  }

  /** Waits for a frame matching the predicate and returns it. */
  async next(pred: (f: unknown[]) => boolean, what = 'frame', timeoutMs = 10_000): Promise<unknown[]> {
    let found: unknown[] | undefined;
    await waitFor(() => (found = this.frames.find(pred)) !== undefined, what, timeoutMs);
    return found!;
  }

  /**
   * The relay's NIP-42 challenge: the one sent at connect if any, else asked for with a REQ that
   * needs AUTH (private kinds, `auth_challenge: demand`), which the relay answers with AUTH and CLOSED.
   */
  async challenge(): Promise<string> {
    if (!this.frames.some((f) => f[0] === 'AUTH')) this.send(['REQ', 'auth-probe', { kinds: [4], limit: 1 }]);
    return (await this.next((f) => f[0] === 'AUTH', 'AUTH challenge'))[1] as string;
  }

  /** Waits for the OK of an event id. */
  ok(id: string): Promise<unknown[]> {
    return this.next((f) => f[0] === 'OK' && f[1] === id, `OK ${id.slice(0, 8)}`);
  }

  /** Waits for EOSE of a subscription. */
  eose(subId: string): Promise<unknown[]> {
    return this.next((f) => f[0] === 'EOSE' && f[1] === subId, `EOSE ${subId}`);
  }

  /** Waits for CLOSED of a subscription. */
  closedOf(subId: string): Promise<unknown[]> {
    return this.next((f) => f[0] === 'CLOSED' && f[1] === subId, `CLOSED ${subId}`);
  }

  /** Publishes and waits for the OK. */
  async publish(ev: { id: string }): Promise<unknown[]> {
    this.send(['EVENT', ev]);
    return this.ok(ev.id);
  }

  /** Sends a REQ and waits for EOSE; returns the events received before it. */
  async req(subId: string, ...filters: object[]): Promise<Array<{ id: string; [k: string]: unknown }>> {
    const start = this.frames.length;
    this.send(['REQ', subId, ...filters]);
    await this.next((f) => (f[0] === 'EOSE' || f[0] === 'CLOSED') && f[1] === subId && this.frames.indexOf(f) >= start, `EOSE ${subId}`);
    return this.frames
      .slice(start)
      .filter((f) => f[0] === 'EVENT' && f[1] === subId)
      .map((f) => f[2] as { id: string });
  }

  /** Closes the socket. */
  close(): void {
    this.ws.close();
  }
}

/**
 * Publishes `events` spread round-robin over `clients`, each keeping `inFlight` events unanswered
 * at most; resolves when every one has its OK.
 */
export async function publishSpread(clients: RawClient[], events: Array<{ id: string }>, inFlight = 16): Promise<void> {
  await Promise.all(
    clients.map(async (p, pi) => {
      const mine = events.filter((_, i) => i % clients.length === pi);
      for (let i = 0; i < mine.length; i += inFlight) {
        const batch = mine.slice(i, i + inFlight);
        for (const e of batch) p.send(['EVENT', e]);
        await Promise.all(batch.map((e) => p.ok(e.id)));
      }
    }),
  );
}

/**
 * Waits until each subscription in `subIds` received `total` events, then checks (a moment later, so a
 * late duplicate shows) that each has every event exactly once; those whose id starts with `q` (the
 * sequence-cursor ones) in sequence order.
 */
export async function expectEachComplete(sub: RawClient, subIds: readonly string[], total: number, timeoutMs: number): Promise<void> {
  for (const id of subIds) await waitFor(() => sub.of('EVENT', id).length >= total, `${id} complete`, timeoutMs);
  await new Promise((r) => setTimeout(r, 200));
  for (const id of subIds) {
    const frames = sub.of('EVENT', id);
    const ids = frames.map((f) => (f[2] as { id: string }).id);
    expect(new Set(ids).size, `${id} has no duplicates`).toBe(ids.length);
    expect(ids.length, `${id} has every event`).toBe(total);
    if (id.startsWith('q')) {
      const seqs = frames.map((f) => (f[3] as { seq: number }).seq);
      expect(seqs, `${id} in sequence order`).toEqual([...seqs].sort((x, y) => x - y));
    }
  }
}
