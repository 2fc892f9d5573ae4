/** Well-known kinds Roost treats specially. */
export const Kind = {
  Metadata: 0,
  Contacts: 3,
  EncryptedDirectMessage: 4,
  Deletion: 5,
  Seal: 13,
  PrivateDirectMessage: 14,
  GiftWrap: 1059,
  ClientAuth: 22242,
  /** Roost push-wake registration, NIP-44 encrypted to the relay (ephemeral; intercepted, never stored). */
  WakeRegistration: 29059,
} as const;

/** NIP-01 replaceable: only the latest per (pubkey, kind) is kept. */
export function isReplaceableKind(kind: number): boolean {
  return kind === 0 || kind === 3 || (kind >= 10000 && kind < 20000);
}

/** NIP-01 ephemeral: delivered live, never stored. */
export function isEphemeralKind(kind: number): boolean {
  return kind >= 20000 && kind < 30000;
}

/** NIP-01 addressable: only the latest per (pubkey, kind, d tag) is kept. */
export function isAddressableKind(kind: number): boolean {
  return kind >= 30000 && kind < 40000;
}

/** NIP-01 regular: every event is kept. */
export function isRegularKind(kind: number): boolean {
  return !isReplaceableKind(kind) && !isEphemeralKind(kind) && !isAddressableKind(kind);
}
