import { generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

/** One send the fake FCM received. */
export interface FcmRequest {
  projectId: string;
  headers: http.IncomingHttpHeaders;
  /** The `message` of the v1 send request. */
  message: Record<string, unknown> & { token?: string; data?: Record<string, string>; android?: Record<string, unknown> };
}

/** What the fake answers to a send. */
export interface FcmReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Holds the answer back this long (to observe requests in flight). */
  delayMs?: number;
}

/** A fake FCM HTTP v1 endpoint with an OAuth token endpoint (`/token`), on 127.0.0.1. */
export interface FakeFcm {
  /** Origin, e.g. http://127.0.0.1:40123. */
  readonly url: string;
  readonly requests: FcmRequest[];
  /** Access tokens handed out by `/token` (after checking the service account's JWT assertion). */
  readonly issuedTokens: string[];
  /** Most requests the fake held unanswered at once. */
  readonly maxInFlight: number;
  /** Sets how sends are answered (default: 200 with a message name). */
  reply(fn: (req: FcmRequest, index: number) => FcmReply): void;
  close(): Promise<void>;
}

/** An error body shaped like FCM v1's, with the FcmError detail firebase-admin reads. */
export function fcmError(status: number, grpcStatus: string, message: string, fcmErrorCode?: string): FcmReply {
  const details = fcmErrorCode ? [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: fcmErrorCode }] : [];
  return { status, body: { error: { code: status, message, status: grpcStatus, details } } };
}

/** A Google-style service account for `projectId` whose token_uri points at the fake. */
export function makeServiceAccount(projectId: string, tokenUri: string): { json: Record<string, string>; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    json: {
      type: 'service_account',
      project_id: projectId,
      private_key_id: 'test-key-1',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: `roost@${projectId}.iam.gserviceaccount.com`,
      token_uri: tokenUri,
    },
    publicKey,
  };
}

/**
 * Starts a fake FCM. `accessToken` is accepted as is; `serviceAccount` lets `/token` mint tokens for
 * RS256 assertions signed by that account. Plain HTTP unless `tls` is given.
 */
export async function startFakeFcm(options: {
  accessToken?: string;
  serviceAccount?: { publicKey: KeyObject; clientEmail: string };
  tls?: { key: string; cert: string };
}): Promise<FakeFcm> {
  const requests: FcmRequest[] = [];
  const issuedTokens: string[] = [];
  let replier: (req: FcmRequest, index: number) => FcmReply = (req) => ({
    status: 200,
    body: { name: `projects/${req.projectId}/messages/${requests.length}` },
  });
  let origin = '';
  let inFlight = 0;
  let maxInFlight = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const send = (r: FcmReply) => {
        const write = () => {
          inFlight--;
          res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers });
          res.end(r.body === undefined ? '' : JSON.stringify(r.body));
        };
        if (r.delayMs) setTimeout(write, r.delayMs);
        else write();
      };
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      if (req.method === 'POST' && req.url === '/token') {
        const form = new URLSearchParams(text);
        if (
          options.serviceAccount &&
          form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer' &&
          checkAssertion(form.get('assertion') ?? '', options.serviceAccount, `${origin}/token`)
        ) {
          const token = `fake-access-${issuedTokens.length + 1}`;
          issuedTokens.push(token);
          send({ status: 200, body: { access_token: token, expires_in: 3600, token_type: 'Bearer' } });
        } else send({ status: 400, body: { error: 'invalid_grant' } });
        return;
      }
      const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) return send({ status: 404, body: { error: { code: 404, message: 'not found', status: 'NOT_FOUND' } } });
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!bearer || !(bearer === options.accessToken || issuedTokens.includes(bearer))) {
        return send(fcmError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'));
      }
      let message: FcmRequest['message'] = {};
      try {
        message = (JSON.parse(text) as { message: FcmRequest['message'] }).message;
      } catch {
        return send(fcmError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
      }
      const r: FcmRequest = { projectId: m[1]!, headers: req.headers, message };
      requests.push(r);
      send(replier(r, requests.length - 1));
    });
  };

  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url: origin,
    requests,
    issuedTokens,
    get maxInFlight() {
      return maxInFlight;
    },
    reply(fn) {
      replier = fn;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function checkAssertion(jwt: string, account: { publicKey: KeyObject; clientEmail: string }, audience: string): boolean {
  const parts = jwt.split('.');
  if (parts.length !== 3) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as { alg?: string };
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { iss?: string; aud?: string; scope?: string; exp?: number };
    if (header.alg !== 'RS256' || claims.iss !== account.clientEmail || claims.aud !== audience) return false;
    if (!claims.scope?.includes('firebase.messaging') || !claims.exp || claims.exp * 1000 < Date.now()) return false;
    return verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), account.publicKey, Buffer.from(parts[2]!, 'base64url'));
  } catch {
    return false;
  }
}
