import { generateKeyPairSync, randomBytes, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import http2 from 'node:http2';
import { isIP } from 'node:net';

// --- a self-signed certificate, built with node:crypto and a minimal DER writer ---

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const der = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
};
const seq = (...c: Buffer[]) => der(0x30, ...c);
const set = (...c: Buffer[]) => der(0x31, ...c);
const oid = (dotted: string): Buffer => {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a! + b!];
  for (const arc of rest) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return der(0x06, Buffer.from(out));
};
const positiveInt = (b: Buffer): Buffer => der(0x02, (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), b]) : b);
const utcTime = (d: Date): Buffer => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));
const ipBytes = (ip: string): Buffer =>
  isIP(ip) === 4
    ? Buffer.from(ip.split('.').map(Number))
    : Buffer.from(ip.split(':').flatMap((h) => [parseInt(h || '0', 16) >> 8, parseInt(h || '0', 16) & 0xff]));

/** A throw-away self-signed TLS certificate (EC P-256, CA:true) for the given DNS names and IP addresses. */
export function makeSelfSignedCert(hosts: string[] = ['127.0.0.1', 'localhost'], commonName = 'roost-test'): { key: string; cert: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), der(0x0c, Buffer.from(commonName)))));
  const now = Date.now();
  const san = seq(...hosts.map((h) => (isIP(h) ? der(0x87, ipBytes(h)) : der(0x82, Buffer.from(h)))));
  const extensions = der(
    0xa3,
    seq(seq(oid('2.5.29.19'), der(0x01, Buffer.from([0xff])), der(0x04, seq(der(0x01, Buffer.from([0xff]))))), seq(oid('2.5.29.17'), der(0x04, san))),
  );
  const tbs = seq(
    der(0xa0, positiveInt(Buffer.from([2]))),
    positiveInt(randomBytes(16)),
    ecdsaSha256,
    name,
    seq(utcTime(new Date(now - 3_600_000)), utcTime(new Date(now + 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, ecdsaSha256, der(0x03, Buffer.from([0]), signature));
  const b64 = cert.toString('base64').replace(/.{64}/g, '$&\n');
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`,
  };
}

/** An APNs token-auth signing key as Apple issues it (.p8: PKCS#8 EC P-256). */
export function makeApnsSigningKey(): { p8: string; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { p8: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

// --- the fake APNs server ---

/** One request the fake APNs received. */
export interface ApnsRequest {
  deviceToken: string;
  headers: Record<string, string>;
  body: unknown;
  /** The provider JWT verified against the signing key, with the expected key id and team id. */
  authorized: boolean;
}

/** What the fake answers: a status, an optional JSON body (Apple's `{reason, timestamp}`) and headers. */
export interface ApnsReply {
  status: number;
  body?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** A fake APNs: HTTP/2 over TLS on 127.0.0.1 with the test's own certificate. */
export interface FakeApns {
  readonly port: number;
  readonly requests: ApnsRequest[];
  /** Sets how the next requests are answered (default: 200 to every authorized request). */
  reply(fn: (req: ApnsRequest, index: number) => ApnsReply): void;
  close(): Promise<void>;
}

/** Starts a fake APNs that checks the provider token like Apple does (ES256, kid, iss). */
export async function startFakeApns(options: {
  tls: { key: string; cert: string };
  publicKey: KeyObject;
  keyId: string;
  teamId: string;
  port?: number;
}): Promise<FakeApns> {
  const requests: ApnsRequest[] = [];
  let replier: (req: ApnsRequest, index: number) => ApnsReply = () => ({ status: 200 });
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createSecureServer({ key: options.tls.key, cert: options.tls.cert });
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const path = String(headers[':path'] ?? '');
      const flat: Record<string, string> = {};
      for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':') && v !== undefined) flat[k] = String(v);
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const req: ApnsRequest = {
        deviceToken: path.startsWith('/3/device/') ? path.slice('/3/device/'.length) : '',
        headers: flat,
        body,
        authorized: checkProviderToken(flat.authorization, options),
      };
      requests.push(req);
      const reply: ApnsReply = req.authorized ? replier(req, requests.length - 1) : { status: 403, body: { reason: 'InvalidProviderToken' } };
      const out: http2.OutgoingHttpHeaders = { ':status': reply.status, 'apns-id': flat['apns-id'] ?? randomUUID(), ...reply.headers };
      if (reply.body) {
        stream.respond({ ...out, 'content-type': 'application/json' });
        stream.end(JSON.stringify(reply.body));
      } else {
        stream.respond(out);
        stream.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    requests,
    reply(fn) {
      replier = fn;
    },
    close() {
      for (const s of sessions) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function checkProviderToken(authorization: string | undefined, o: { publicKey: KeyObject; keyId: string; teamId: string }): boolean {
  const m = /^bearer (.+)$/i.exec(authorization ?? '');
  const parts = m?.[1]?.split('.');
  if (parts?.length !== 3) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as { alg?: string; kid?: string };
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { iss?: string; iat?: number };
    if (header.alg !== 'ES256' || header.kid !== o.keyId || claims.iss !== o.teamId || typeof claims.iat !== 'number') return false;
    return verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key: o.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2]!, 'base64url'));
  } catch {
    return false;
  }
}
