import type { NostrEvent } from '../event.js';

/** Roost extension metadata attached to EVENT and EOSE in sequence mode. */
export interface SeqInfo {
  seq: number;
}

/**
 * `["EVENT", subId, event]`, built from the stored raw JSON so it is never re-serialised; in sequence mode
 * `["EVENT", subId, event, {"seq": n}]`, plus `"via": [pubkey, ...]` for a replicated event: its origin chain
 * (`via`, comma-separated 64-hex pubkeys as stored, checked when stored).
 */
export function makeEventFrame(subIdJson: string, rawEvent: string, seq?: number, via?: string): string {
  if (seq === undefined) return `["EVENT",${subIdJson},${rawEvent}]`;
  if (via === undefined || via === '') return `["EVENT",${subIdJson},${rawEvent},{"seq":${seq}}]`;
  return `["EVENT",${subIdJson},${rawEvent},{"seq":${seq},"via":["${via.replaceAll(',', '","')}"]}]`;
}

/** `["OK", id, accepted, reason]` */
export function makeOkFrame(eventId: string, accepted: boolean, reason: string): string {
  return JSON.stringify(['OK', eventId, accepted, reason]);
}

/** `["EOSE", subId]`, or in sequence mode `["EOSE", subId, {"cursor": n, "more": bool}]`. */
export function makeEoseFrame(subId: string, cursor?: { cursor: number; more: boolean }): string {
  return cursor ? JSON.stringify(['EOSE', subId, cursor]) : JSON.stringify(['EOSE', subId]);
}

/** `["CLOSED", subId, reason]` */
export function makeClosedFrame(subId: string, reason: string): string {
  return JSON.stringify(['CLOSED', subId, reason]);
}

/** `["NOTICE", message]` */
export function makeNoticeFrame(message: string): string {
  return JSON.stringify(['NOTICE', message]);
}

/** `["AUTH", challenge]` (NIP-42) */
export function makeAuthFrame(challenge: string): string {
  return JSON.stringify(['AUTH', challenge]);
}

/** `["COUNT", subId, {"count": n}]` (NIP-45) */
export function makeCountFrame(subId: string, count: number): string {
  return JSON.stringify(['COUNT', subId, { count }]);
}

/** `["NEG-MSG", subId, hex]` (NIP-77) */
export function makeNegMsgFrame(subId: string, hex: string): string {
  return JSON.stringify(['NEG-MSG', subId, hex]);
}

/** `["NEG-ERR", subId, reason]` (NIP-77; the session is closed) */
export function makeNegErrFrame(subId: string, reason: string): string {
  return JSON.stringify(['NEG-ERR', subId, reason]);
}

/** A relay → client message as parsed by a client. */
export type RelayMessage =
  | { type: 'EVENT'; subId: string; event: NostrEvent; seq?: number }
  | { type: 'OK'; eventId: string; accepted: boolean; reason: string }
  | { type: 'EOSE'; subId: string; cursor?: number; more?: boolean }
  | { type: 'CLOSED'; subId: string; reason: string }
  | { type: 'NOTICE'; message: string }
  | { type: 'AUTH'; challenge: string }
  | { type: 'COUNT'; subId: string; count: number };
