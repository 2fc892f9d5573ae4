import { DirectError } from '../transport/errors.js';
import { makeRtcFactory, type RtcFactory } from '../transport/rtc.js';

/** Options passed to every Node peer connection (node-datachannel's `RtcConfig`). */
export interface NodeRtcOptions {
  /** Bind ICE to one local address (e.g. '127.0.0.1' on a loopback-only machine). */
  bindAddress?: string;
  portRangeBegin?: number;
  portRangeEnd?: number;
  enableIceTcp?: boolean;
}

// A variable module name keeps bundlers and type resolution from pulling the optional dependency in.
const NODE_RTC_MODULE = 'node-datachannel/polyfill';

/**
 * Loads WebRTC for Node on first use: the optional dependency node-datachannel (libdatachannel),
 * through its W3C polyfill. Fails with ROOST_ERR_DIRECT_UNAVAILABLE when it is not installed.
 */
export async function loadNodeRtc(opts: NodeRtcOptions = {}): Promise<RtcFactory> {
  let mod: { RTCPeerConnection?: unknown };
  try {
    mod = (await import(NODE_RTC_MODULE)) as { RTCPeerConnection?: unknown };
  } catch (err) {
    throw new DirectError(
      'ROOST_ERR_DIRECT_UNAVAILABLE',
      'direct links in Node need the optional dependency node-datachannel (npm install node-datachannel)',
      {},
      { cause: err },
    );
  }
  if (typeof mod.RTCPeerConnection !== 'function') throw new DirectError('ROOST_ERR_DIRECT_UNAVAILABLE', 'node-datachannel/polyfill has no RTCPeerConnection');
  const extra = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
  return makeRtcFactory('node-datachannel', mod.RTCPeerConnection as Parameters<typeof makeRtcFactory>[1], extra);
}
