import { AsyncLocalStorage } from 'node:async_hooks';
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { deleteApp, initializeApp, type App, type Credential } from 'firebase-admin/app';
import { getMessaging, type Message } from 'firebase-admin/messaging';
import { RoostError } from '../config.js';
import { parseRetryAfter } from './backoff.js';
import type { SendOutcome, WakeHint, WakeSender, WakeTarget } from './types.js';

/** Settings of the FCM sender. */
export interface FcmSenderOptions {
  credential: Credential;
  projectId: string;
  /** Base URL (origin only) to send to instead of https://fcm.googleapis.com (local test servers). */
  endpoint?: string;
  /** CA certificates trusted for an https endpoint instead of the system ones. */
  ca?: Buffer[];
  /** The generic text of `alert` wakes (ROOST_PUSH_ALERT_TITLE/BODY); default "Roost" / "New activity". */
  alert?: { title: string; body: string };
}

/** What the HTTP layer saw of the response to one send, which firebase-admin's error leaves out. */
interface ResponseSeen {
  status?: number;
  retryAfter?: string | string[];
}

const seen = new AsyncLocalStorage<ResponseSeen>();

interface AgentWithAddRequest {
  addRequest(req: http.ClientRequest, options: unknown): void;
}
const baseAddRequest = (https.Agent.prototype as unknown as AgentWithAddRequest).addRequest;

/**
 * The agent firebase-admin sends through. It redirects connections to a configured endpoint (the
 * messaging host is fixed inside firebase-admin) and notes each response's status and Retry-After
 * for the send that made the request. `addRequest` is the hook proxy agents use; it runs in the
 * caller's async context, so the note lands on the right send.
 */
class FcmAgent extends https.Agent {
  readonly #endpoint: URL | undefined;
  readonly #ca: Buffer[] | undefined;

  constructor(endpoint: URL | undefined, ca: Buffer[] | undefined) {
    super({ keepAlive: true, ...(ca && ca.length > 0 ? { ca } : {}) });
    this.#endpoint = endpoint;
    this.#ca = ca && ca.length > 0 ? ca : undefined;
  }

  addRequest(req: http.ClientRequest, options: unknown): void {
    const note = seen.getStore();
    if (note) {
      req.once('response', (res: http.IncomingMessage) => {
        note.status = res.statusCode;
        note.retryAfter = res.headers['retry-after'];
      });
    }
    baseAddRequest.call(this, req, options);
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const ep = this.#endpoint;
    if (!ep) return super.createConnection(options, callback);
    const host = ep.hostname.replace(/^\[|\]$/g, '');
    if (ep.protocol === 'http:') return net.connect({ host, port: Number(ep.port || 80) });
    const o: tls.ConnectionOptions = { host, port: Number(ep.port || 443), ALPNProtocols: ['http/1.1'] };
    if (!net.isIP(host)) o.servername = host;
    if (this.#ca) o.ca = this.#ca;
    return tls.connect(o);
  }
}

/** The generic notification text when none is configured (the config's defaults). */
export const DEFAULT_FCM_ALERT = { title: 'Roost', body: 'New activity' } as const;

/**
 * The message of a wake: the hint as strings, Android priority by wake mode, collapse key, TTL. An
 * `alert` wake also carries a `notification` with the operator's generic title and body (never anything
 * of the event), so Android shows it even when the app is not running, as APNs does for alert pushes.
 */
export function makeFcmMessage(target: WakeTarget, hint: WakeHint, ttlMs: number, alert: { title: string; body: string } = DEFAULT_FCM_ALERT): Message {
  const data: Record<string, string> = { roost: '1', seq: String(hint.seq), mode: target.mode };
  if (hint.relay) data.relay = hint.relay;
  return {
    token: target.token,
    data,
    ...(target.mode === 'alert' ? { notification: { title: alert.title, body: alert.body } } : {}),
    android: { priority: target.mode === 'alert' ? 'high' : 'normal', ttl: Math.max(0, ttlMs), collapseKey: hint.collapseId },
  };
}

/** What an FCM failure means for the queue, from firebase-admin's error code and the HTTP status seen. */
export function classifyFcmFailure(err: unknown, response: ResponseSeen, now: number): SendOutcome {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'unknown';
  const message = String((err as { message?: unknown })?.message ?? '');
  const status = response.status;
  const label = `fcm:${status ?? '-'}:${code}`;
  // 401: the access token was refused; firebase-admin fetches a new one when it nears expiry, so try again later.
  if (status === 429 || status === 401 || (status !== undefined && status >= 500)) {
    const retryAfterMs = parseRetryAfter(response.retryAfter, now);
    return retryAfterMs === undefined ? { kind: 'retry', code: label, status } : { kind: 'retry', code: label, status, retryAfterMs };
  }
  if (code === 'messaging/registration-token-not-registered' || code === 'messaging/invalid-registration-token') {
    return { kind: 'prune', code: label, ...(status ? { status } : {}) };
  }
  // INVALID_ARGUMENT covers every malformed field; only one that names the token condemns the token.
  if (code === 'messaging/invalid-argument') {
    return /registration token|message\.token/i.test(message)
      ? { kind: 'prune', code: label, ...(status ? { status } : {}) }
      : { kind: 'reject', code: label, ...(status ? { status } : {}) };
  }
  if (status === undefined) return { kind: 'retry', code: label };
  if (code === 'messaging/message-rate-exceeded' || code === 'messaging/device-message-rate-exceeded') {
    return { kind: 'retry', code: label, status };
  }
  return { kind: 'reject', code: label, status };
}

let appCounter = 0;

/**
 * An FCM sender on firebase-admin: one `send()` per device (`sendEach*` would open its own HTTP/2
 * connection to Google, ignoring the agent). firebase-admin's own retry of 503 is switched off so
 * that every retry goes through the relay's queue, its clock and its counters.
 */
export function createFcmSender(options: FcmSenderOptions): WakeSender {
  let endpoint: URL | undefined;
  if (options.endpoint) {
    try {
      endpoint = new URL(options.endpoint);
    } catch (err) {
      throw new RoostError('ROOST_ERR_PUSH_CONFIG', `FCM endpoint ${JSON.stringify(options.endpoint)} is not a URL`, { cause: err });
    }
    if ((endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') || (endpoint.pathname !== '/' && endpoint.pathname !== '')) {
      throw new RoostError('ROOST_ERR_PUSH_CONFIG', 'the FCM endpoint must be an http(s) origin such as https://127.0.0.1:8443');
    }
  }
  if (!options.projectId) throw new RoostError('ROOST_ERR_PUSH_CONFIG', 'FCM needs a project id');
  const agent = new FcmAgent(endpoint, options.ca);
  const app: App = initializeApp({ credential: options.credential, projectId: options.projectId, httpAgent: agent }, `roost-push-${++appCounter}`);
  const messaging = getMessaging(app);
  disableLibraryRetries(messaging);

  return {
    platform: 'fcm',
    async send(target, hint) {
      const note: ResponseSeen = {};
      try {
        await seen.run(note, () => messaging.send(makeFcmMessage(target, hint, hint.ttlSeconds * 1000, options.alert)));
        return { kind: 'sent' };
      } catch (err) {
        return classifyFcmFailure(err, note, Date.now());
      }
    },
    async close() {
      await deleteApp(app);
      agent.destroy();
    },
  };
}

function disableLibraryRetries(messaging: object): void {
  const client = (messaging as { messagingRequestHandler?: { httpClient?: { retry?: unknown } } }).messagingRequestHandler?.httpClient;
  if (client && 'retry' in client) {
    client.retry = { maxRetries: 0, statusCodes: [], ioErrorCodes: [], backOffFactor: 0, maxDelayInMillis: 0 };
  }
}
