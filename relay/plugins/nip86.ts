import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { NostrEvent } from '../../shared/event.js';
import { HTTP_AUTH_WINDOW_SECONDS, checkHttpAuthEvent, getAuthorizationEvent } from '../../shared/nip98.js';
import {
  callManagementMethod,
  isChangingMethod,
  managementRequestSchema,
  parseManagementParams,
  type ManagementDeps,
  type ManagementResponse,
} from '../admin/nip86.js';
import type { SharedAdminLog } from '../store/types.js';
import type { RelayUrlCheck } from '../relay-url.js';
import { getMediaType, hasRequestBody } from './http-limits.js';

/** The NIP-86 content type. */
export const NIP86_CONTENT_TYPE = 'application/nostr+json+rpc';

/** What the management endpoint needs. */
export interface Nip86Options extends ManagementDeps {
  /** Pubkeys allowed to manage the relay. */
  admins: ReadonlySet<string>;
  /** Whether a NIP-98 `u` tag names this relay, for a request arriving on a given socket (relay-url.ts). */
  isRelayUrl: RelayUrlCheck;
  /** Seconds since the epoch. */
  now: () => number;
  /** Checks an event's id and signature. */
  verify: (event: NostrEvent) => boolean;
  /** The admin log shared with the other relays on this database, if any. */
  shared?: SharedAdminLog;
}

/** Refusals of the endpoint, in NIP-86 response shape. */
function refuse(reply: FastifyReply, code: number, error: string) {
  return reply.code(code).type('application/json').send({ result: null, error });
}

/**
 * A management call on a relay sharing its database with others: a change is appended to the
 * shared log and answered once this instance has applied it from there (every instance applies
 * the log, in the same order); a list is answered after catching up with the log.
 */
async function callSharedManagementMethod(
  deps: ManagementDeps,
  shared: SharedAdminLog,
  pubkey: string,
  name: string,
  params: readonly unknown[],
): Promise<ManagementResponse> {
  if (!isChangingMethod(name)) {
    await shared.catchUp();
    return callManagementMethod(deps, pubkey, name, params);
  }
  const p = parseManagementParams(name, params);
  if ('error' in p) return p;
  await shared.append({ pubkey, method: name, params: [...p.params] });
  await shared.catchUp();
  return { result: true };
}

/**
 * NIP-86 relay management: `POST /` with Content-Type application/nostr+json+rpc, authorised by a
 * NIP-98 event (payload tag required, each event usable once) signed by a configured admin.
 */
export function registerNip86(app: FastifyInstance, opts: Nip86Options): void {
  const used = new Map<string, number>();
  // Its size is the relay's HTTP body limit (fastify's bodyLimit, checked in plugins/http-limits.ts).
  app.addContentTypeParser(NIP86_CONTENT_TYPE, { parseAs: 'string' }, (_req, body, done) => done(null, body));

  const authorise = (req: FastifyRequest, body: string): { pubkey: string; sig: string; until: number } | { code: number; error: string } => {
    const ev = getAuthorizationEvent(req.headers.authorization);
    if (!ev) return { code: 401, error: 'unauthorized: a NIP-98 Authorization header is required' };
    const now = opts.now();
    const payload = createHash('sha256').update(body).digest('hex');
    const bad = checkHttpAuthEvent(ev, { method: 'POST', matchUrl: (u) => opts.isRelayUrl(u, req.raw.socket), payload, now });
    if (bad) return { code: 401, error: `unauthorized: ${bad}` };
    if (!opts.verify(ev)) return { code: 401, error: 'unauthorized: bad signature on the authorization event' };
    // Keyed by signature, not id: two identical calls within a second share an id, while a
    // replayed header repeats the signature, which only the key holder could vary.
    for (const [sig, until] of used) if (until < now) used.delete(sig);
    if (used.has(ev.sig)) return { code: 401, error: 'unauthorized: this authorization event was already used' };
    used.set(ev.sig, ev.created_at + HTTP_AUTH_WINDOW_SECONDS);
    if (!opts.admins.has(ev.pubkey)) return { code: 403, error: 'forbidden: this pubkey may not manage the relay' };
    return { pubkey: ev.pubkey, sig: ev.sig, until: ev.created_at + HTTP_AUTH_WINDOW_SECONDS };
  };

  app.post(
    '/',
    {
      // Without a NIP-98 header nobody may call: refused before the body is read.
      onRequest: async (req, reply) => {
        if (getAuthorizationEvent(req.headers.authorization) !== undefined) return;
        if (getMediaType(req.headers['content-type']) !== NIP86_CONTENT_TYPE) return; // 415 from the handler
        if (hasRequestBody(req.headers)) reply.header('connection', 'close');
        return refuse(reply, 401, 'unauthorized: a NIP-98 Authorization header is required');
      },
    },
    async (req, reply) => {
      if (getMediaType(req.headers['content-type']) !== NIP86_CONTENT_TYPE) return refuse(reply, 415, `POST / takes ${NIP86_CONTENT_TYPE} (NIP-86)`);
      const body = typeof req.body === 'string' ? req.body : '';
      const who = authorise(req, body);
      if ('error' in who) {
        req.log.warn({ code: who.code }, 'management call refused');
        return refuse(reply, who.code, who.error);
      }
      // In a cluster, one use across every instance: a header replayed to another one is refused too.
      if (opts.shared && !(await opts.shared.claimAuthorization(who.sig, who.until))) {
        req.log.warn({ code: 401 }, 'management call refused');
        return refuse(reply, 401, 'unauthorized: this authorization event was already used');
      }
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        return refuse(reply, 400, 'invalid: body is not JSON');
      }
      const parsed = managementRequestSchema.safeParse(json);
      if (!parsed.success) return refuse(reply, 400, 'invalid: body must be {"method": string, "params": array}');
      let res;
      try {
        res = opts.shared
          ? await callSharedManagementMethod(opts, opts.shared, who.pubkey, parsed.data.method, parsed.data.params)
          : callManagementMethod(opts, who.pubkey, parsed.data.method, parsed.data.params);
      } catch (err) {
        req.log.error({ err, method: parsed.data.method }, 'management call failed');
        return refuse(reply, 500, 'error: internal error');
      }
      req.log.info({ admin: who.pubkey, method: parsed.data.method, ok: res.error === undefined }, 'management call');
      reply.type('application/json');
      return res.error === undefined ? { result: res.result } : { result: null, error: res.error };
    },
  );
}
