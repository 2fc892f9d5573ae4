// biome-ignore-all lint/complexity/noCommaOperator: each METHODS row that changes state reads `(d.admin.change(...), true)`: act, then answer true.
import { z } from 'zod';
import { normalizeIp } from '../policies/rate-limit.js';
import type { AdminStore } from './store.js';

/** A NIP-86 request body. */
export const managementRequestSchema = z.object({
  method: z.string().min(1).max(64),
  params: z.array(z.unknown()).max(16).default([]),
});

/** A NIP-86 response body: a result, or an error message. */
export type ManagementResponse = { result: unknown; error?: undefined } | { result?: undefined; error: string };

/** What the management methods act on. */
export interface ManagementDeps {
  admin: AdminStore;
  /** Closes live connections from an address; returns how many. */
  disconnectIp(ip: string): number;
}

const hex64 = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'must be 32 bytes of hex'));
const reason = z.string().max(500).optional().default('');
const hexAndReason = z
  .tuple([hex64])
  .rest(z.unknown())
  .transform((p) => [p[0], reason.parse(p[1])] as const);
const none = z.tuple([]);
const text = (max: number) => z.tuple([z.string().max(max)]);
const kind = z.tuple([z.coerce.number().int().min(0).max(65535)]);
const ip = z
  .string()
  .min(2)
  .max(64)
  .regex(/^[0-9a-fA-F.:]+$/, 'must be an IP address')
  .transform((a) => normalizeIp(a.toLowerCase()));
const ipAndReason = z
  .tuple([ip])
  .rest(z.unknown())
  .transform((p) => [p[0], reason.parse(p[1])] as const);

interface Method<P extends readonly unknown[]> {
  params: z.ZodType<P, unknown>;
  run(deps: ManagementDeps, params: P): unknown;
}

function method<P extends readonly unknown[]>(params: z.ZodType<P, unknown>, run: (deps: ManagementDeps, params: P) => unknown): Method<P> {
  return { params, run };
}

/** Every supported NIP-86 method: its parameter schema and what it does. */
const METHODS: Record<string, Method<readonly unknown[]>> = {
  supportedmethods: method(none, () => Object.keys(METHODS)),
  banpubkey: method(hexAndReason, (d, [pk, r]) => (d.admin.banPubkey(pk, r), true)),
  unbanpubkey: method(hexAndReason, (d, [pk]) => (d.admin.unbanPubkey(pk), true)),
  listbannedpubkeys: method(none, (d) => d.admin.listBannedPubkeys()),
  allowpubkey: method(hexAndReason, (d, [pk, r]) => (d.admin.allowPubkey(pk, r), true)),
  unallowpubkey: method(hexAndReason, (d, [pk]) => (d.admin.unallowPubkey(pk), true)),
  listallowedpubkeys: method(none, (d) => d.admin.listAllowedPubkeys()),
  listeventsneedingmoderation: method(none, () => []),
  allowevent: method(hexAndReason, (d, [id, r]) => (d.admin.allowEvent(id, r), true)),
  unallowevent: method(hexAndReason, (d, [id]) => (d.admin.unallowEvent(id), true)),
  banevent: method(hexAndReason, (d, [id, r]) => (d.admin.banEvent(id, r), true)),
  unbanevent: method(hexAndReason, (d, [id]) => (d.admin.unbanEvent(id), true)),
  listbannedevents: method(none, (d) => d.admin.listBannedEvents()),
  listallowedevents: method(none, (d) => d.admin.listAllowedEvents()),
  changerelayname: method(text(100), (d, [v]) => (d.admin.setSetting('name', v), true)),
  changerelaydescription: method(text(2000), (d, [v]) => (d.admin.setSetting('description', v), true)),
  changerelayicon: method(text(1000), (d, [v]) => (d.admin.setSetting('icon', v), true)),
  allowkind: method(kind, (d, [k]) => (d.admin.allowKind(k), true)),
  disallowkind: method(kind, (d, [k]) => (d.admin.disallowKind(k), true)),
  listallowedkinds: method(none, (d) => d.admin.listAllowedKinds()),
  listdisallowedkinds: method(none, (d) => d.admin.listDisallowedKinds()),
  blockip: method(ipAndReason, (d, [addr, r]) => {
    d.admin.blockIp(addr, r);
    d.disconnectIp(addr);
    return true;
  }),
  unblockip: method(ipAndReason, (d, [addr]) => (d.admin.unblockIp(addr), true)),
  listblockedips: method(none, (d) => d.admin.listBlockedIps()),
} as Record<string, Method<readonly unknown[]>>;

/** Names of the supported methods. */
export const SUPPORTED_METHODS: readonly string[] = Object.keys(METHODS);

/** Whether a method changes the relay's state (recorded in the audit trail, shared across a cluster). */
export function isChangingMethod(name: string): boolean {
  return Object.hasOwn(METHODS, name) && !name.startsWith('list') && name !== 'supportedmethods';
}

/** A call's parameters validated by its method's schema, or the error answer. */
export function parseManagementParams(name: string, rawParams: readonly unknown[]): { params: readonly unknown[] } | { error: string } {
  const m = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!m) return { error: `unsupported method ${JSON.stringify(name)}` };
  const parsed = m.params.safeParse(rawParams);
  if (!parsed.success) {
    return { error: `invalid params for ${name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}` };
  }
  return { params: parsed.data };
}

/** Applies a change recorded in a shared admin log (another instance validated and audited it). */
export function applyManagementChange(deps: ManagementDeps, name: string, params: readonly unknown[]): void {
  const p = parseManagementParams(name, params);
  if ('error' in p || !isChangingMethod(name)) return;
  METHODS[name]!.run(deps, p.params);
}

/** Runs one management call for an authorised admin (records it in the audit trail). */
export function callManagementMethod(deps: ManagementDeps, pubkey: string, name: string, rawParams: readonly unknown[]): ManagementResponse {
  const m = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!m) return { error: `unsupported method ${JSON.stringify(name)}` };
  const parsed = m.params.safeParse(rawParams);
  if (!parsed.success) {
    return { error: `invalid params for ${name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}` };
  }
  const result = m.run(deps, parsed.data);
  if (!name.startsWith('list') && name !== 'supportedmethods') deps.admin.audit(pubkey, name, parsed.data);
  return { result };
}
