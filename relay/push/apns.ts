import { createPrivateKey } from 'node:crypto';
import apn from '@parse/node-apn';
import { RoostError } from '../config.js';
import type { SendOutcome, WakeHint, WakeSender, WakeTarget } from './types.js';

/** Settings of the APNs sender (token-based authentication). */
export interface ApnsSenderOptions {
  /** The .p8 signing key, PEM text. */
  key: string | Buffer;
  keyId: string;
  teamId: string;
  /** Sends every environment to this host instead of Apple's (local test servers). */
  host?: string;
  port?: number;
  /** CA certificates trusted instead of the system ones. */
  ca?: Buffer[];
  requestTimeoutMs: number;
  /** The generic text of `alert` wakes. */
  alert: { title: string; body: string };
}

const APPLE_HOST = { sandbox: 'api.sandbox.push.apple.com', production: 'api.push.apple.com' } as const;

/** Reasons with which Apple says a token will never work for this topic again. */
const DEAD_TOKEN_REASONS = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic']);

/** The body of a wake: the hint under `roost`, and either `content-available` or a generic alert. */
export function makeApnsNotification(target: WakeTarget, hint: WakeHint, alert: { title: string; body: string }): apn.Notification {
  const n = new apn.Notification();
  n.topic = target.topic;
  n.collapseId = hint.collapseId;
  n.expiry = hint.expiresAt;
  n.payload = { roost: hint.relay ? { relay: hint.relay, seq: hint.seq } : { seq: hint.seq } };
  if (target.mode === 'alert') {
    n.pushType = 'alert';
    n.priority = 10;
    n.alert = { title: alert.title, body: alert.body };
  } else {
    n.pushType = 'background';
    n.priority = 5;
    n.contentAvailable = true;
  }
  return n;
}

/** What an APNs failure means for the queue. */
export function classifyApnsFailure(failure: apn.ResponseFailure | undefined): SendOutcome {
  const status = typeof failure?.status === 'number' ? failure.status : Number(failure?.status) || undefined;
  const reason = failure?.response?.reason ?? '';
  const code = status === undefined ? 'apns:network' : `apns:${status}${reason ? ':' + reason : ''}`;
  if (status === undefined) return { kind: 'retry', code };
  if (status === 400 && DEAD_TOKEN_REASONS.has(reason)) return { kind: 'prune', code, status };
  if (status === 410) {
    // Apple's timestamp is milliseconds since the epoch; the token is dead only for registrations older than it.
    const ts = Number(failure?.response?.timestamp);
    return Number.isFinite(ts) && ts > 0 ? { kind: 'prune', code, status, unregisteredAt: ts } : { kind: 'prune', code, status };
  }
  if (status === 429 || status >= 500 || (status === 403 && reason === 'ExpiredProviderToken')) return { kind: 'retry', code, status };
  return { kind: 'reject', code, status };
}

/**
 * An APNs sender on @parse/node-apn with token authentication: one HTTP/2 connection per environment.
 * node-apn's own retries are turned off (it retries 429 and 5xx at once, with no delay); the relay's
 * queue backs off instead.
 */
export function createApnsSender(options: ApnsSenderOptions): WakeSender {
  checkSigningKey(options);
  const providers = new Map<string, apn.Provider>();
  const token = { key: options.key, keyId: options.keyId, teamId: options.teamId };

  function providerFor(environment: WakeTarget['environment']): apn.Provider {
    const production = environment === 'production';
    const address = options.host || (production ? APPLE_HOST.production : APPLE_HOST.sandbox);
    let p = providers.get(address);
    if (!p) {
      const o: apn.ProviderOptions = {
        token,
        production,
        address,
        port: options.port ?? 443,
        connectionRetryLimit: 0,
        requestTimeout: options.requestTimeoutMs,
      };
      if (options.ca && options.ca.length > 0) o.ca = options.ca;
      p = new apn.Provider(o);
      providers.set(address, p);
    }
    return p;
  }

  return {
    platform: 'apns',
    async send(target, hint) {
      try {
        const result = await providerFor(target.environment).send(makeApnsNotification(target, hint, options.alert), target.token);
        if (result.sent.length > 0) return { kind: 'sent' };
        return classifyApnsFailure(result.failed[0]);
      } catch {
        return { kind: 'retry', code: 'apns:exception' };
      }
    },
    async close() {
      const all = [...providers.values()];
      providers.clear();
      // node-apn never calls back when its session already died of an error: do not wait forever.
      await Promise.all(all.map((p) => Promise.race([new Promise<void>((resolve) => void p.shutdown(resolve)), delay(1000)])));
    },
  };
}

function checkSigningKey(options: ApnsSenderOptions): void {
  if (!options.keyId || !options.teamId) {
    throw new RoostError('ROOST_ERR_PUSH_CONFIG', 'APNs needs the key id and the team id of its signing key');
  }
  let curve: string | undefined;
  try {
    curve = createPrivateKey(options.key).asymmetricKeyDetails?.namedCurve;
  } catch (err) {
    throw new RoostError('ROOST_ERR_PUSH_CONFIG', 'the APNs signing key is not a PEM private key', { cause: err });
  }
  if (curve !== 'prime256v1') throw new RoostError('ROOST_ERR_PUSH_CONFIG', 'the APNs signing key must be an EC P-256 (.p8) key');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
