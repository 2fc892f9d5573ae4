// Deterministic workload data, signed once and cached in .bench-cache/ (signing is never measured).
// Ids are computed with nostr-tools (getEventHash) and a sample of every data set is checked with
// nostr-tools' verifyEvent; the BIP-340 signature itself comes from tiny-secp256k1, ten times faster
// than nostr-tools' pure-JS signer here (0.2 ms against 2.2 ms an event), so a 118k-event cache is
// built in about half a minute instead of four.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getEventHash, verifyEvent } from 'nostr-tools/pure';
import * as ecc from 'tiny-secp256k1';
import { makeRandom } from './random.mjs';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Where signed data sets are cached (git-ignored). */
export const CACHE_DIR = join(ROOT, '.bench-cache');
const CACHE_VERSION = 1;
const CACHE_MAX_AGE_S = 7 * 24 * 3600;

/** Kind used for addressable (kind 30000–39999) lookups. */
export const ADDR_KIND = 30078;

/** A 32-byte secret key derived from a label, stable across runs. */
export function deriveSecret(label) {
  for (let n = 0; ; n++) {
    const sk = createHash('sha256').update(`roost-bench/${label}/${n}`).digest();
    if (ecc.isPrivate(sk)) return new Uint8Array(sk);
  }
}

/** A 64-hex value derived from a label, used as a tag target that needs no secret key. */
export function deriveHex(label) {
  return createHash('sha256').update(`roost-bench/target/${label}`).digest('hex');
}

/** A signing identity: secret key and x-only public key (hex). */
export function makeIdentity(label) {
  const sk = deriveSecret(label);
  return { sk, pubkey: Buffer.from(ecc.xOnlyPointFromScalar(sk)).toString('hex') };
}

const NO_AUX = new Uint8Array(32);

/** Signs a template as `who`; returns the event's JSON text (field order as NIP-01 lists them). */
export function signToJson(template, who) {
  const ev = { pubkey: who.pubkey, created_at: template.created_at, kind: template.kind, tags: template.tags, content: template.content };
  const id = getEventHash(ev);
  const sig = Buffer.from(ecc.signSchnorr(Buffer.from(id, 'hex'), who.sk, NO_AUX)).toString('hex');
  return JSON.stringify({ id, pubkey: ev.pubkey, created_at: ev.created_at, kind: ev.kind, tags: ev.tags, content: ev.content, sig });
}

export { makeRandom } from './random.mjs';

/** Shuffles an array in place with a seeded PRNG (Fisher–Yates). */
export function shuffle(items, seed) {
  const rnd = makeRandom(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

const WORDS = 'agent task note result pending retry summary context tool plan step memory reply status update queue wake sync'.split(' ');

function text(rnd, chars) {
  let s = '';
  while (s.length < chars) s += WORDS[Math.floor(rnd() * WORDS.length)] + ' ';
  return s.slice(0, chars).trimEnd();
}

/**
 * Everything the ingest, query and backfill workloads need, for one size. Returned keys and
 * counts are derived again on every load; only the signed event texts come from the cache.
 */
export function describeStoreCorpus(size) {
  const publishers = Array.from({ length: size.publishers }, (_, i) => makeIdentity(`publisher-${i}`));
  const authors = Array.from({ length: size.authors }, (_, i) => makeIdentity(`author-${i}`));
  const targets = Array.from({ length: size.targets }, (_, i) => deriveHex(`query-p-${i}`));
  const agent = deriveHex('agent-mailbox');
  return { size, publishers, authors, targets, agent };
}

function generateStoreCorpus(c, now) {
  const { size, publishers, authors, targets, agent } = c;
  const rnd = makeRandom(1);
  const out = [];
  // Mailbox: unique created_at per event so standard since/until paging is exact.
  const mailboxStart = now - size.mailbox - 60;
  for (let i = 0; i < size.mailbox; i++) {
    const who = publishers[i % publishers.length];
    out.push(signToJson({ kind: 1, created_at: mailboxStart + i, tags: [['p', agent]], content: `#${i} ${text(rnd, 160)}` }, who));
  }
  // Query corpus: every author posts perAuthor notes, each tagging one target; with as many
  // targets as authors, a ↦ a + 37·i is a shift for each i, so every target is tagged perAuthor times.
  const base = mailboxStart - 100_000;
  for (let a = 0; a < authors.length; a++) {
    for (let i = 0; i < size.perAuthor; i++) {
      const t = targets[(a + i * 37) % targets.length];
      out.push(signToJson({ kind: 1, created_at: base - a * size.perAuthor - i, tags: [['p', t]], content: text(rnd, 100) }, authors[a]));
    }
    for (let j = 0; j < size.addrPerAuthor; j++) {
      out.push(signToJson({ kind: ADDR_KIND, created_at: base - j, tags: [['d', `slot-${j}`]], content: text(rnd, 80) }, authors[a]));
    }
  }
  return shuffle(out, 2);
}

/** Senders and per-subscriber targets for the fan-out workload. */
export function describeFanoutCorpus(size) {
  const publishers = Array.from({ length: size.fanoutPublishers }, (_, i) => makeIdentity(`fanout-publisher-${i}`));
  const targets = Array.from({ length: size.subscribers - Math.floor(size.subscribers / 2) }, (_, i) => deriveHex(`fanout-p-${i}`));
  return { size, publishers, targets };
}

function generateFanoutCorpus(c, now) {
  const { size, publishers, targets } = c;
  const rnd = makeRandom(3);
  const out = [];
  const n = size.fanoutEvents * size.fanoutRounds;
  for (let i = 0; i < n; i++) {
    const who = publishers[i % publishers.length];
    out.push(signToJson({ kind: 1, created_at: now - n + i, tags: [['p', targets[i % targets.length]]], content: `#${i} ${text(rnd, 120)}` }, who));
  }
  return out;
}

/** A signed data set from the cache, or generated (`generate(now)` → JSON texts) and cached. */
export function loadOrGenerate(name, spec, generate, log) {
  mkdirSync(CACHE_DIR, { recursive: true });
  const key = createHash('sha256')
    .update(JSON.stringify({ v: CACHE_VERSION, name, spec }))
    .digest('hex')
    .slice(0, 12);
  const file = join(CACHE_DIR, `${name}-${key}.jsonl`);
  const now = Math.floor(Date.now() / 1000);
  if (existsSync(file)) {
    const textAll = readFileSync(file, 'utf8');
    const nl = textAll.indexOf('\n');
    const meta = JSON.parse(textAll.slice(0, nl));
    if (meta.version === CACHE_VERSION && now - meta.generatedAt < CACHE_MAX_AGE_S) {
      const lines = textAll.slice(nl + 1).split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      if (lines.length === meta.count) return { events: lines, file, key };
    }
  }
  const t0 = performance.now();
  log(`signing ${name} data set (once; cached in .bench-cache/)…`);
  const events = generate(now);
  for (const i of [0, events.length >> 1, events.length - 1]) {
    if (events.length && !verifyEvent(JSON.parse(events[i]))) throw new Error(`${name}: generated event ${i} fails nostr-tools verifyEvent`);
  }
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify({ version: CACHE_VERSION, name, spec, generatedAt: now, count: events.length }) + '\n' + events.join('\n') + '\n');
  renameSync(tmp, file);
  log(`signed ${events.length} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { events, file, key };
}

/**
 * The pre-loaded database for query and backfill (mailbox plus query corpus, shuffled):
 * `{ events, file, key, agent, authors, targets, … }`; `file` is the cache file (JSON lines after
 * one metadata line), `key` identifies its content.
 */
export function loadStoreCorpus(size, log = () => {}) {
  const c = describeStoreCorpus(size);
  const spec = {
    mailbox: size.mailbox,
    publishers: size.publishers,
    authors: size.authors,
    perAuthor: size.perAuthor,
    targets: size.targets,
    addrPerAuthor: size.addrPerAuthor,
  };
  return { ...c, ...loadOrGenerate('store', spec, (now) => generateStoreCorpus(c, now), log) };
}

/** Events published (and measured) by the ingest workload: kind 1 notes from the publishers. */
export function loadIngestCorpus(size, log = () => {}) {
  const publishers = Array.from({ length: size.publishers }, (_, i) => makeIdentity(`ingest-publisher-${i}`));
  const generate = (now) => {
    const rnd = makeRandom(4);
    const out = [];
    for (let i = 0; i < size.ingestEvents; i++) {
      const tags = [['p', deriveHex(`ingest-p-${i % 1000}`)]];
      out.push(signToJson({ kind: 1, created_at: now - size.ingestEvents + i, tags, content: `#${i} ${text(rnd, 160)}` }, publishers[i % publishers.length]));
    }
    return out;
  };
  return loadOrGenerate('ingest', { events: size.ingestEvents, publishers: size.publishers }, generate, log);
}

/** Signed events for the fan-out rounds, in publishing order. */
export function loadFanoutCorpus(size, log = () => {}) {
  const c = describeFanoutCorpus(size);
  const spec = { subscribers: size.subscribers, publishers: size.fanoutPublishers, events: size.fanoutEvents, rounds: size.fanoutRounds };
  return { ...c, ...loadOrGenerate('fanout', spec, (now) => generateFanoutCorpus(c, now), log) };
}
