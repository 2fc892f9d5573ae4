/** A JSON value: what typed CRDT values may hold (numbers finite, no undefined). */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** True when `value` is plain JSON data, at most `depth` levels deep. */
export function isJson(value: unknown, depth = 32): value is Json {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (depth <= 0 || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.every((v) => isJson(v, depth - 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(value).every((v) => isJson(v, depth - 1));
}

/** A key order-independent copy of `value` with object keys sorted, so equal data stringifies equally. */
export function sortJson(value: Json): Json {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(sortJson);
  const out: Record<string, Json> = {};
  for (const k of Object.keys(value).sort()) out[k] = sortJson((value as Record<string, Json>)[k]!);
  return out;
}
