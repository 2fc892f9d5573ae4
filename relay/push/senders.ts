import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { RoostError, type RelayConfig } from '../config.js';
import { Kind } from '../../shared/kinds.js';
import { createApnsSender } from './apns.js';
import { createFcmSender } from './fcm.js';
import { createServiceAccountCredential, createStaticCredential, type FcmCredential } from './fcm-credential.js';
import type { WakePlatform, WakeSenders } from './types.js';

/** The push keys of the relay configuration (all keys named push*). */
export type PushConfig = Pick<RelayConfig, Extract<keyof RelayConfig, `push${string}`>>;

/** What the NIP-11 document says about push wake. */
export interface WakeDescription {
  enabled: boolean;
  /** Event kind of registrations. */
  kind: number;
  platforms: WakePlatform[];
}

/**
 * Builds the senders the configuration has credentials for, reading credential files now so that a
 * bad file stops start-up (ROOST_ERR_PUSH_CONFIG). Without credentials, push wake is off: logged once.
 */
export function createWakeSenders(config: PushConfig, log: Logger): WakeSenders {
  const senders: WakeSenders = {};
  if (config.pushApnsKeyFile) {
    senders.apns = createApnsSender({
      key: readFile(config.pushApnsKeyFile, 'APNs signing key'),
      keyId: config.pushApnsKeyId,
      teamId: config.pushApnsTeamId,
      ...(config.pushApnsHost ? { host: config.pushApnsHost } : {}),
      port: config.pushApnsPort,
      ...(config.pushApnsCaFile ? { ca: [readFile(config.pushApnsCaFile, 'APNs CA file')] } : {}),
      requestTimeoutMs: config.pushRequestTimeoutMs,
      alert: { title: config.pushAlertTitle, body: config.pushAlertBody },
    });
  }
  if (config.pushFcmServiceAccountFile || config.pushFcmAccessToken) {
    const ca = config.pushFcmCaFile ? [readFile(config.pushFcmCaFile, 'FCM CA file')] : undefined;
    const credential: FcmCredential = config.pushFcmAccessToken
      ? createStaticCredential(config.pushFcmAccessToken)
      : createServiceAccountCredential(config.pushFcmServiceAccountFile, { ...(ca ? { ca } : {}), timeoutMs: config.pushRequestTimeoutMs });
    const projectId = config.pushFcmProjectId || credential.projectId;
    if (!projectId) {
      throw new RoostError('ROOST_ERR_PUSH_CONFIG', 'FCM with a fixed access token needs pushFcmProjectId');
    }
    senders.fcm = createFcmSender({
      credential,
      projectId,
      ...(config.pushFcmEndpoint ? { endpoint: config.pushFcmEndpoint } : {}),
      ...(ca ? { ca } : {}),
      alert: { title: config.pushAlertTitle, body: config.pushAlertBody },
    });
  }
  const platforms = getConfiguredPlatforms(senders);
  if (platforms.length === 0) log.info({ push: 'off' }, 'push wake off: no APNs or FCM credentials configured');
  else
    log.info(
      {
        push: 'on',
        platforms,
        apnsHost: senders.apns ? config.pushApnsHost || 'apple' : undefined,
        fcmEndpoint: senders.fcm ? config.pushFcmEndpoint || 'google' : undefined,
      },
      'push wake on',
    );
  return senders;
}

/** The platforms that have a sender. */
export function getConfiguredPlatforms(senders: WakeSenders): WakePlatform[] {
  const out: WakePlatform[] = [];
  if (senders.apns) out.push('apns');
  if (senders.fcm) out.push('fcm');
  return out;
}

/** The NIP-11 view of push wake for these senders. */
export function describeWake(senders: WakeSenders): WakeDescription {
  const platforms = getConfiguredPlatforms(senders);
  return { enabled: platforms.length > 0, kind: Kind.WakeRegistration, platforms };
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new RoostError('ROOST_ERR_PUSH_CONFIG', `cannot read the ${what} ${path}`, { cause: err });
  }
}
