import { describe, expect, it } from 'vitest';
import { getSdpFingerprint, matchSdpFingerprint, normalizeFingerprint } from '../../../client/transport/sdp.js';

const FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';
const sdp = (...fingerprints: string[]) =>
  [
    'v=0',
    'o=- 1 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    ...fingerprints.map((f) => `a=fingerprint:${f}`),
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    '',
  ].join('\r\n');

describe('SDP fingerprints', () => {
  it.each([
    ['one fingerprint', sdp(`sha-256 ${FP}`), `sha-256 ${FP}`],
    ['lowercase hex and upper algorithm are normalised', sdp(`SHA-256 ${FP.toLowerCase()}`), `sha-256 ${FP}`],
    ['session and media level agree', sdp(`sha-256 ${FP}`, `sha-256 ${FP.toLowerCase()}`), `sha-256 ${FP}`],
    ['two different ones are ambiguous', sdp(`sha-256 ${FP}`, `sha-256 ${FP.replace('AB', 'AC')}`), undefined],
    ['none', sdp(), undefined],
    ['malformed hex', sdp('sha-256 ZZ:11'), undefined],
    ['LF line endings', sdp(`sha-256 ${FP}`).replace(/\r\n/g, '\n'), `sha-256 ${FP}`],
  ])('%s', (_name, text, expected) => {
    expect(getSdpFingerprint(text)).toBe(expected);
  });

  it('matches a claimed fingerprint after normalising both', () => {
    expect(matchSdpFingerprint(sdp(`sha-256 ${FP}`), `SHA-256 ${FP.toLowerCase()}`)).toBe(true);
    expect(matchSdpFingerprint(sdp(`sha-256 ${FP}`), `sha-1 ${FP}`)).toBe(false);
    expect(matchSdpFingerprint(sdp(`sha-256 ${FP}`), 'garbage')).toBe(false);
    expect(matchSdpFingerprint(sdp(), `sha-256 ${FP}`)).toBe(false);
    expect(normalizeFingerprint(' sha-256  ab:cd ')).toBe('sha-256 AB:CD');
  });
});
