import { describe, expect, it } from 'vitest';
import { bytesToHex, encodeVarint, hexToBytes, Negentropy, NegentropyError, NegentropySet } from '../../shared/nip77.js';
import { loadNostrToolsNip77 } from '../helpers/nostr-tools-nip77.js';
import { createRng } from '../helpers/prng.js';

interface Item {
  timestamp: number;
  id: string;
}

/** Two seeded sets sharing most items: `a` alone, `b` alone, both. */
function divergentSets(seed: number, common: number, onlyA: number, onlyB: number) {
  const rng = createRng(seed);
  const item = (): Item => ({
    // Few distinct timestamps, so many bounds need id prefixes.
    timestamp: 1_700_000_000 + rng.int(0, Math.max(1, common >> 3)),
    id: Array.from({ length: 32 }, () => rng.int(0, 255).toString(16).padStart(2, '0')).join(''),
  });
  const both = Array.from({ length: common }, item);
  const a = Array.from({ length: onlyA }, item);
  const b = Array.from({ length: onlyB }, item);
  return { a: [...both, ...a], b: [...both, ...b], onlyA: a.map((x) => x.id).sort(), onlyB: b.map((x) => x.id).sort() };
}

describe('NIP-77 codec', () => {
  it('writes varints most significant digit first, high bit on all but the last', () => {
    expect([...encodeVarint(0)]).toEqual([0]);
    expect([...encodeVarint(127)]).toEqual([127]);
    expect([...encodeVarint(128)]).toEqual([0x81, 0]);
    expect([...encodeVarint(16384)]).toEqual([0x81, 0x80, 0]);
    expect(bytesToHex(hexToBytes('00ff10'))).toBe('00ff10');
  });

  it('fingerprints: sum of ids mod 2^256 (little-endian) then varint count, sha256, 16 bytes', async () => {
    const { NegentropyStorageVector } = await loadNostrToolsNip77();
    const { a } = divergentSets(7, 300, 0, 0);
    // All-ones ids overflow every limb: the sum wraps mod 2^256.
    a.push({ timestamp: 1, id: 'ff'.repeat(32) }, { timestamp: 2, id: 'ff'.repeat(32).replace(/^ff/, 'fe') });
    const ours = NegentropySet.from(a);
    const theirs = new NegentropyStorageVector();
    for (const x of a) theirs.insert(x.timestamp, x.id);
    theirs.seal();
    const fp = (theirs as unknown as { fingerprint(b: number, e: number): Uint8Array }).fingerprint;
    for (const [b, e] of [
      [0, 0],
      [0, 1],
      [0, 302],
      [5, 77],
    ] as const) {
      expect(bytesToHex(ours.fingerprint(b, e))).toBe(bytesToHex(fp.call(theirs, b, e)));
    }
  });

  for (const [common, onlyA, onlyB] of [
    [0, 0, 0],
    [0, 5, 0],
    [10, 0, 40],
    [5000, 50, 50],
    [5000, 500, 0],
    [3000, 0, 3000],
  ] as const) {
    it(`our responder and nostr-tools' initiator agree (${common} shared, ${onlyA}/${onlyB} apart)`, async () => {
      const { Negentropy: TheirNeg, NegentropyStorageVector } = await loadNostrToolsNip77();
      const sets = divergentSets(common + onlyA * 3 + onlyB, common, onlyA, onlyB);
      const storage = new NegentropyStorageVector();
      for (const x of sets.a) storage.insert(x.timestamp, x.id);
      storage.seal();
      const client = new TheirNeg(storage, 4096);
      const server = new Negentropy(NegentropySet.from(sets.b), 'responder', { frameSizeLimit: 4096 });
      const have: string[] = [];
      const need: string[] = [];
      let msg: string | null = client.initiate();
      let rounds = 0;
      while (msg !== null) {
        const answer = bytesToHex(server.respond(hexToBytes(msg)));
        msg = client.reconcile(
          answer,
          (id) => have.push(id),
          (id) => need.push(id),
        );
        if (++rounds > 200) throw new Error('no convergence');
      }
      expect(have.sort()).toEqual(sets.onlyA);
      expect(need.sort()).toEqual(sets.onlyB);
    });

    // nostr-tools' Negentropy only initiates, so our initiator is checked against our responder (judged above).
    it(`our initiator and responder agree (${common} shared, ${onlyA}/${onlyB} apart)`, () => {
      const sets = divergentSets(common + onlyA + onlyB * 5, common, onlyA, onlyB);
      const server = new Negentropy(NegentropySet.from(sets.b), 'responder', { frameSizeLimit: 4096 });
      const client = new Negentropy(NegentropySet.from(sets.a), 'initiator', { frameSizeLimit: 4096 });
      const have: string[] = [];
      const need: string[] = [];
      let msg: Uint8Array | undefined = client.initiate();
      let rounds = 0;
      while (msg !== undefined) {
        const r = client.reconcile(server.respond(msg));
        have.push(...r.have);
        need.push(...r.need);
        msg = r.next;
        if (++rounds > 200) throw new Error('no convergence');
      }
      expect(have.sort()).toEqual(sets.onlyA);
      expect(need.sort()).toEqual(sets.onlyB);
    });
  }

  it('answers another protocol version with the one it speaks, and refuses what is not negentropy', () => {
    const server = new Negentropy(NegentropySet.from([]), 'responder');
    expect(bytesToHex(server.respond(Uint8Array.of(0x62, 1, 2)))).toBe('61');
    expect(() => server.respond(Uint8Array.of(0x10))).toThrow(NegentropyError);
    expect(() => server.respond(new Uint8Array(0))).toThrow(NegentropyError);
  });

  it('refuses malformed messages with NegentropyError, never anything else (seeded fuzz)', () => {
    const rng = createRng(77);
    const { a } = divergentSets(3, 2000, 0, 0);
    const server = new Negentropy(NegentropySet.from(a), 'responder', { frameSizeLimit: 4096 });
    const valid = new Negentropy(NegentropySet.from(a.slice(0, 1500)), 'initiator').initiate();
    const cases: Uint8Array[] = [
      Uint8Array.of(0x61, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), // varint past 2^53
      Uint8Array.of(0x61, 0x00, 0x21), // id prefix of 33 bytes
      Uint8Array.of(0x61, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0x7f), // huge id count
      Uint8Array.of(0x61, 0x00, 0x00, 0x07), // unknown mode
      Uint8Array.of(0x61, 0x00, 0x00, 0x01, 1, 2, 3), // truncated fingerprint
      Uint8Array.of(0x61, 0x85), // truncated varint
    ];
    for (let i = 0; i < 3000; i++) {
      if (rng.chance(0.5)) {
        cases.push(Uint8Array.from({ length: rng.int(0, 64) }, (_, j) => (j === 0 ? 0x61 : rng.int(0, 255))));
      } else {
        // A valid message, cut short or with bytes flipped.
        const m = valid.slice(0, rng.int(1, valid.length));
        for (let k = rng.int(0, 3); k > 0; k--) m[rng.int(1, m.length - 1)] = rng.int(0, 255);
        cases.push(m);
      }
    }
    for (const c of cases) {
      try {
        server.respond(c);
      } catch (err) {
        expect(err).toBeInstanceOf(NegentropyError);
      }
    }
  });
});
