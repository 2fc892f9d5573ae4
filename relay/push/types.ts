/** A push service Roost can wake devices through. */
export type WakePlatform = 'apns' | 'fcm';

/** `background`: silent wake (APNs priority 5, FCM normal); `alert`: generic visible notification (APNs 10, FCM high). */
export type WakeMode = 'background' | 'alert';

/** One device that wakes an agent, as stored (the token never leaves the relay except to its push service). */
export interface WakeTarget {
  platform: WakePlatform;
  token: string;
  /** APNs topic (bundle id); '' for FCM. */
  topic: string;
  /** APNs environment; '' for FCM. */
  environment: '' | 'sandbox' | 'production';
  mode: WakeMode;
}

/** What a wake tells the device: nothing private, only where to resume. */
export interface WakeHint {
  /** The relay's public URL ('' when the operator did not set one). */
  relay: string;
  /** Sequence number of the first event the agent was woken for; resume with `seq_after: seq - 1`. */
  seq: number;
  /** Same for every wake of one agent on one relay, so a newer wake replaces an older one on the device. */
  collapseId: string;
  /** Unix seconds after which the push service should drop the wake (APNs expiration). */
  expiresAt: number;
  /** Seconds left until then (FCM TTL). */
  ttlSeconds: number;
}

/** The result of one push request, classified for the queue. */
export type SendOutcome =
  | { kind: 'sent' }
  /** 429, 5xx or a network error: try again later, no sooner than `retryAfterMs` when given. */
  | { kind: 'retry'; code: string; status?: number; retryAfterMs?: number }
  /** The token is dead. `unregisteredAt` (ms) is Apple's timestamp: prune only registrations older than it. */
  | { kind: 'prune'; code: string; status?: number; unregisteredAt?: number }
  /** Permanent failure of this wake that says nothing about the token (bad topic, credentials, payload). */
  | { kind: 'reject'; code: string; status?: number };

/** Sends wakes to one push service. Implementations never throw from `send`. */
export interface WakeSender {
  readonly platform: WakePlatform;
  send(target: WakeTarget, hint: WakeHint): Promise<SendOutcome>;
  close(): Promise<void>;
}

/** The configured senders; a platform without credentials is absent. */
export interface WakeSenders {
  apns?: WakeSender;
  fcm?: WakeSender;
}

/** Time, injected so that tests control backoff and intervals. */
export interface PushClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` after `ms`; returns a canceller. Must not keep the process alive. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The real clock. */
export const systemClock: PushClock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};
