/**
 * Direct links between agents: WebRTC data channels signalled through the relay, the relay as
 * fallback. Browser-safe; Node loads its WebRTC from client/node/rtc.ts.
 */
export { DirectError, type DirectErrorCode } from './errors.js';
export { DIRECT_CHANNEL_LABEL, encodeLinkFrame, linkFrameSchema, parseLinkFrame, type LinkFrame } from './frames.js';
export { ICE_SERVERS_FIELD, getIceServers, mergeIceServers } from './ice.js';
export { DIRECT_PROOF_KIND, DIRECT_PROOF_MAX_SKEW, checkProof, makeProof, type ProofContext } from './proof.js';
export { SeenSet, SendWindow, getSeenKey, type HandledIds, type SeenIds } from './reliable.js';
export { createRelaySignalling, getSignalFilter, type SignalRelay } from './relay-signalling.js';
export {
  getBrowserRtc,
  makeRtcFactory,
  type RtcDataChannelLike,
  type RtcFactory,
  type RtcIceCandidateInit,
  type RtcIceServer,
  type RtcPeerConnectionLike,
  type RtcSessionDescription,
} from './rtc.js';
export { getSdpFingerprint, matchSdpFingerprint, normalizeFingerprint } from './sdp.js';
export {
  DIRECT_SIGNAL_KIND,
  DIRECT_SIGNAL_MAX_AGE,
  DIRECT_SIGNAL_VERSION,
  SignalCodec,
  signalPayloadSchema,
  type DirectIdentity,
  type ReceivedSignal,
  type SignalPayload,
} from './signal.js';
export {
  DirectTransport,
  createDirectTransport,
  type DeliveryPath,
  type DirectLinkState,
  type DirectLogger,
  type DirectSignalling,
  type DirectTimers,
  type DirectTransportOptions,
  type LinkHost,
  type PeerMessage,
} from './webrtc.js';
