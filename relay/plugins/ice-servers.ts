import { ICE_SERVERS_FIELD } from '../../shared/ice-servers.js';
import type { RelayConfig } from '../config.js';
import type { InfoContributor } from './nip11.js';

/** Advertises the configured STUN/TURN servers in NIP-11 (`ice_servers`) for agents' direct links. */
export function iceServersInfo(config: RelayConfig): InfoContributor {
  return () => (config.iceServers.length > 0 ? { [ICE_SERVERS_FIELD]: config.iceServers } : {});
}
