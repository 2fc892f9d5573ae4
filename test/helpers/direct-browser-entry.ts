// Bundled with esbuild into the Chromium page of the direct-link browser test.
export { startMiniAgent } from './direct-agent.js';
export { getBrowserRtc } from '../../client/transport/rtc.js';
