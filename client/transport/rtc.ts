/**
 * The slice of the W3C WebRTC API the direct-link layer uses. Browsers' native
 * `RTCPeerConnection` fits, and so does the Node polyfill loaded by client/node/rtc.ts. Handlers
 * are typed loosely (`(ev: never)`) so that either implementation's event types are accepted.
 */

/** An SDP offer or answer. */
export interface RtcSessionDescription {
  type: string;
  sdp: string;
}

/** A trickled ICE candidate. */
export interface RtcIceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

/** A STUN or TURN server (the W3C `RTCIceServer` shape). */
export interface RtcIceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** A data channel: text frames only. */
export interface RtcDataChannelLike {
  readonly label: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  onopen: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onbufferedamountlow: ((ev: never) => void) | null;
  send(data: string): void;
  close(): void;
}

/** A peer connection. */
export interface RtcPeerConnectionLike {
  readonly localDescription: RtcSessionDescription | null;
  readonly remoteDescription: RtcSessionDescription | null;
  readonly connectionState: string;
  onicecandidate: ((ev: never) => void) | null;
  ondatachannel: ((ev: never) => void) | null;
  onconnectionstatechange: ((ev: never) => void) | null;
  createOffer(): Promise<RtcSessionDescription>;
  createAnswer(): Promise<RtcSessionDescription>;
  setLocalDescription(desc: RtcSessionDescription): Promise<void>;
  setRemoteDescription(desc: RtcSessionDescription): Promise<void>;
  addIceCandidate(candidate: RtcIceCandidateInit): Promise<void>;
  createDataChannel(label: string, init?: { ordered?: boolean }): RtcDataChannelLike;
  close(): void;
}

/** Where peer connections come from: the browser's global, or a Node library (injected). */
export interface RtcFactory {
  /** A short name for logs and benchmarks ("browser", "node-datachannel"). */
  readonly name: string;
  createPeerConnection(config: { iceServers: RtcIceServer[] }): RtcPeerConnectionLike;
}

type PeerConnectionClass = new (config: { iceServers: RtcIceServer[] } & Record<string, unknown>) => RtcPeerConnectionLike;

/** A factory over any W3C-style `RTCPeerConnection` class; `extra` is merged into every config. */
export function makeRtcFactory(name: string, PeerConnection: PeerConnectionClass, extra: Record<string, unknown> = {}): RtcFactory {
  return {
    name,
    createPeerConnection: (config) => new PeerConnection({ ...extra, ...config }),
  };
}

/** The platform's native WebRTC (browsers), or undefined where there is none (Node). */
export function getBrowserRtc(): RtcFactory | undefined {
  const PC = (globalThis as { RTCPeerConnection?: PeerConnectionClass }).RTCPeerConnection;
  return PC ? makeRtcFactory('browser', PC) : undefined;
}
