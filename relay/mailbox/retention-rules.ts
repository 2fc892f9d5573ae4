/** One retention rule: events of these kinds (all kinds when absent) are kept for `seconds` after created_at. */
export interface RetentionRule {
  /** Inclusive kind ranges; a single kind is [k, k]. */
  kinds?: Array<[number, number]>;
  seconds: number;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
const MAX_KIND = 65535;

/**
 * Parses the `retention` setting: comma-separated `KINDS:AGE`, first match wins. KINDS is `*` or
 * kinds and ranges joined with `+` (`1+7+30000-39999`); AGE is seconds or a number with a unit
 * s, m, h, d, w or y. Pure, so the config schema can validate with it.
 */
export function parseRetention(spec: string): { ok: true; rules: RetentionRule[] } | { ok: false; error: string } {
  const rules: RetentionRule[] = [];
  const text = spec.trim();
  if (text === '') return { ok: true, rules };
  for (const part of text.split(',')) {
    const m = /^\s*([^:]+?)\s*:\s*(\d+)([smhdwy]?)\s*$/.exec(part);
    if (!m) return { ok: false, error: `bad retention rule ${JSON.stringify(part.trim())} (want KINDS:AGE)` };
    const seconds = Number(m[2]) * UNIT_SECONDS[m[3] || 's']!;
    if (!Number.isSafeInteger(seconds) || seconds < 1) return { ok: false, error: `retention age must be at least 1s in ${JSON.stringify(part.trim())}` };
    if (m[1] === '*') {
      rules.push({ seconds });
      continue;
    }
    const kinds: Array<[number, number]> = [];
    for (const item of m[1]!.split('+')) {
      const r = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item.trim());
      const lo = r ? Number(r[1]) : NaN;
      const hi = r?.[2] !== undefined ? Number(r[2]) : lo;
      if (!r || lo > hi || hi > MAX_KIND) return { ok: false, error: `bad kind or range ${JSON.stringify(item.trim())} in retention` };
      kinds.push([lo, hi]);
    }
    rules.push({ kinds, seconds });
  }
  return { ok: true, rules };
}

/** The first rule that applies to a kind, if any. */
export function findRetentionRule(rules: readonly RetentionRule[], kind: number): RetentionRule | undefined {
  return rules.find((r) => !r.kinds || r.kinds.some(([lo, hi]) => kind >= lo && kind <= hi));
}

/** The NIP-11 `retention` array for the rules (a kind range of one kind is written as the kind). */
export function describeRetention(rules: readonly RetentionRule[]): Array<{ kinds?: Array<number | [number, number]>; time: number }> {
  return rules.map((r) =>
    r.kinds ? { kinds: r.kinds.map(([lo, hi]) => (lo === hi ? lo : ([lo, hi] as [number, number]))), time: r.seconds } : { time: r.seconds },
  );
}

/** Parses a comma-separated list of kinds (the `mailboxPrivateKinds` setting). */
export function parseKindList(spec: string): { ok: true; kinds: number[] } | { ok: false; error: string } {
  const kinds: number[] = [];
  for (const item of spec.split(',')) {
    const t = item.trim();
    if (t === '') continue;
    if (!/^\d{1,5}$/.test(t) || Number(t) > MAX_KIND) return { ok: false, error: `bad kind ${JSON.stringify(t)}` };
    kinds.push(Number(t));
  }
  return { ok: true, kinds };
}
