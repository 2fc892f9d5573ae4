import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Credential, GoogleOAuthAccessToken } from 'firebase-admin/app';
import { z } from 'zod';
import { RoostError } from '../config.js';

const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

const serviceAccountSchema = z.object({
  project_id: z.string().min(1),
  client_email: z.string().min(1),
  private_key: z.string().min(1),
  private_key_id: z.string().optional(),
  token_uri: z.url({ protocol: /^https?$/ }).optional(),
});

/** A firebase-admin credential that also knows its project. */
export interface FcmCredential extends Credential {
  readonly projectId: string | undefined;
}

/** A credential that always hands out one fixed access token (local test servers). */
export function createStaticCredential(accessToken: string, projectId?: string): FcmCredential {
  return {
    projectId,
    getAccessToken: async () => ({ access_token: accessToken, expires_in: 3600 }),
  };
}

/**
 * A service-account credential that honours the file's `token_uri` (firebase-admin's own one always
 * asks Google). It signs an RS256 JWT assertion and trades it for an access token (RFC 7523).
 */
export function createServiceAccountCredential(file: string, options: { ca?: Buffer[]; timeoutMs?: number } = {}): FcmCredential {
  let parsed: z.infer<typeof serviceAccountSchema>;
  try {
    parsed = serviceAccountSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new RoostError('ROOST_ERR_PUSH_CONFIG', `cannot use FCM service-account file ${file}`, { cause: err });
  }
  const account = parsed;
  let key;
  try {
    key = createPrivateKey(account.private_key);
  } catch (err) {
    throw new RoostError('ROOST_ERR_PUSH_CONFIG', `the private_key of ${file} is not a PEM private key`, { cause: err });
  }
  const tokenUri = account.token_uri ?? GOOGLE_TOKEN_URI;

  return {
    projectId: account.project_id,
    async getAccessToken(): Promise<GoogleOAuthAccessToken> {
      const iat = Math.floor(Date.now() / 1000);
      const header = { alg: 'RS256', typ: 'JWT', ...(account.private_key_id ? { kid: account.private_key_id } : {}) };
      const claims = { iss: account.client_email, scope: FCM_SCOPE, aud: tokenUri, iat, exp: iat + 3600 };
      const unsigned = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const assertion = `${unsigned}.${sign('sha256', Buffer.from(unsigned), key).toString('base64url')}`;
      const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
      const res = await postForm(tokenUri, body, options.ca, options.timeoutMs ?? 10_000);
      let json: unknown;
      try {
        json = JSON.parse(res.body);
      } catch {
        json = undefined;
      }
      const ok = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().positive() }).safeParse(json);
      if (res.status !== 200 || !ok.success) {
        throw new RoostError('ROOST_ERR_PUSH_AUTH', `FCM token endpoint answered ${res.status}`);
      }
      return { access_token: ok.data.access_token, expires_in: ok.data.expires_in };
    },
  };
}

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url');
}

function postForm(url: string, body: string, ca: Buffer[] | undefined, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const options: https.RequestOptions = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      timeout: timeoutMs,
    };
    if (ca && ca.length > 0) options.ca = ca;
    const req = (u.protocol === 'http:' ? http : https).request(u, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new RoostError('ROOST_ERR_PUSH_AUTH', 'FCM token endpoint timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
