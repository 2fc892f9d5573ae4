import type * as Y from 'yjs';

/** What a typed view needs from its document: the Y.Doc, the injected clock and a write guard. */
export interface ViewContext {
  readonly ydoc: Y.Doc;
  /** Milliseconds, injected (LWW timestamps). */
  now(): number;
  /** Throws a coded error when this replica may not write the view. */
  assertWritable(): void;
}

/** Separates a user key from the writer slot in flat Y.Map keys; user keys may not contain it. */
export const SLOT_SEP = '\u0000';

/** The writer slot of this replica: its Yjs client id, unique per live replica. */
export function ownSlot(ctx: ViewContext): number {
  return ctx.ydoc.clientID;
}

/** Splits a flat `key SEP slot` map key; undefined when malformed. */
export function splitSlotKey(flat: string): { key: string; slot: number } | undefined {
  const i = flat.lastIndexOf(SLOT_SEP);
  if (i < 0) return undefined;
  const slot = Number(flat.slice(i + 1));
  if (!Number.isSafeInteger(slot) || slot < 0) return undefined;
  return { key: flat.slice(0, i), slot };
}
