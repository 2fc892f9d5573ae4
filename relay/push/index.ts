/** Push wake (issue 10): what the relay core wires in. */
export { createPushWake, type PushStats, type PushWake, type PushWakeConfig, type PushWakeDeps } from './wake.js';
export { describeWake, createWakeSenders, type WakeDescription } from './senders.js';
export {
  isWakeRegistration,
  parseWakeRegistration,
  parseWakeRegistrationPayload,
  type WakeChannel,
  type WakeRegistration,
  type WakeRegistrationResult,
} from './registration.js';
export type { PushClock, SendOutcome, WakeHint, WakeMode, WakePlatform, WakeSender, WakeSenders, WakeTarget } from './types.js';
