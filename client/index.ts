/**
 * Roost's agent client, browser-safe entry (no Node built-ins). Node programs use client/node/index.ts,
 * which adds the `ws` WebSocket, key files and the SQLite store.
 */
export {
  Agent,
  createAgent,
  type AgentEvents,
  type AgentOptions,
  type KeySource,
  type KeyStep,
  type KeyStepHost,
  type DirectMessage,
  type InboxEvent,
  type InboxMessage,
  type MessageHandler,
  type PublishOptions,
  type RequestHandler,
} from './agent.js';
export { AgentDoc, openAgentDoc, type AgentDocOptions, type DocHost } from './crdt-relay.js';
export { getBackoffDelay, systemTimers, type Timers } from './backoff.js';
export { getDefaultCrypto, nobleCrypto, setDefaultCrypto, type NostrCrypto } from './crypto.js';
export { REQUEST_TAG, RESPONSE_TAG, unwrapDirectMessage, wrapDirectMessage, type Rumor } from './dm.js';
export { Emitter, silentLogger, type ClientLogger } from './emitter.js';
export { DeliveryGate, Messenger, getMessageKey, type DeliveryRecord, type SendResult } from './messaging.js';
export { Publisher } from './publisher.js';
export { ClientError, isTransientReason, type ClientErrorCode } from './errors.js';
export { Identity, getNpub, loadOrCreateIdentity, parsePubkey, parseSecretKey, verifyEvent, type KeyValueStorage } from './identity.js';
export { INBOX_SUB_ID, Inbox, type Delivery, type InboxHandler } from './inbox.js';
export { fetchRelayInfo, getRelayHttpUrl, type FetchLike, type RelayInfo } from './nip11.js';
export { Outbox, type PublishResult, type Settlement } from './outbox.js';
export { combineDiscovery, fetchPresence, type AgentInfo, type Presence } from './presence.js';
export {
  RelayLink,
  normalizeRelayUrl,
  type LinkState,
  type OkResult,
  type RelayLinkOptions,
  type SubscriptionSpec,
  type WebSocketConstructor,
  type WebSocketLike,
} from './relay-link.js';
export { parseRelayMessage } from '../shared/messages/relay-parse.js';
export { KeyValueStore, MemoryStore, type AgentStore, type DocState, type OutboxEntry, type ParkedMessage } from './store.js';
export { MAX_WAKE_CHANNELS, WAKE_REGISTRATION_KIND, checkWakeChannels, makeWakeRegistration, type WakeChannel, type WakeMode } from './wake.js';
export {
  AGENT_CARD_KIND,
  AGENT_HEARTBEAT_KIND,
  makeAgentCard,
  getAgentCard,
  type AgentCard,
  type Heartbeat,
  type HeartbeatStatus,
} from '../shared/agent-card.js';
export * from './crdt/index.js';
export { TASK_DM_TAG, TaskClient, taskFilters, type OnRequestOptions, type TaskContext, type TaskHandler } from './tasks.js';
export { DecisionClient } from './decisions.js';
export { makeWorkHost, type WorkHost } from './work-host.js';
export { getTraceLogFields } from './tracing.js';
export * from '../shared/tasks.js';
export * from '../shared/decisions.js';
export * from '../shared/identity-log.js';
export * from '../shared/reputation.js';
