import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/**
 * A local stand-in for Supabase Auth (GoTrue) speaking its HTTP protocol: the JWKS discovery document, GET /user
 * for an access token, POST /otp (email sign-in links) and POST /invite for the admin API, CORS for browsers,
 * with GoTrue's error shape
 * {"code", "error_code", "msg"}. It signs ES256 access tokens like a project with asymmetric signing keys.
 */
export interface FakeSupabaseAuth {
  url: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  publicJwk: JWK;
  /** An ES256 access token as Supabase issues it; `overrides` replace claims, `header` the protected header. */
  accessToken(userId: string, overrides?: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /** An HS256 token signed with the legacy shared secret. */
  legacyToken(userId: string, overrides?: Record<string, unknown>): Promise<string>;
  /** Ends the user's sessions: their tokens still verify locally but /user refuses them. */
  revokeSessions(userId: string): void;
  invited: string[];
  /** Emails a sign-in link (POST /otp) was asked for. */
  otpRequests: string[];
  jwksRequests: () => number;
  close(): Promise<void>;
}

// Supabase answers browsers from any origin (supabase-js runs in pages served elsewhere).
const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, apikey, content-type, x-client-info, x-supabase-api-version",
  "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
};

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json", ...CORS });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function decodePayload(token: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export async function startFakeSupabaseAuth(): Promise<FakeSupabaseAuth> {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const anonKey = `anon-${randomUUID()}`;
  const serviceRoleKey = `service-${randomUUID()}`;
  const jwtSecret = `legacy-secret-${randomUUID()}-${randomUUID()}`;
  const revoked = new Set<string>();
  const invited: string[] = [];
  const otpRequests: string[] = [];
  let jwksRequests = 0;
  let url = "";

  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS);
      return res.end();
    }
    const apikey = req.headers.apikey;
    if (path === "/auth/v1/.well-known/jwks.json" && req.method === "GET") {
      jwksRequests++;
      return send(res, 200, { keys: [publicJwk] });
    }
    if (apikey !== anonKey && apikey !== serviceRoleKey) {
      return send(res, 401, {
        message: "No API key found in request",
        hint: "No `apikey` request header or url param was found.",
      });
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    // Sign-in by email (magic link / OTP): GoTrue answers 200 with an empty object and mails the link.
    if (path === "/auth/v1/otp" && req.method === "POST") {
      const body = await readJson(req);
      if (typeof body.email !== "string") {
        return send(res, 400, { code: 400, error_code: "validation_failed", msg: "Email is required" });
      }
      otpRequests.push(body.email);
      return send(res, 200, {});
    }
    if (path === "/auth/v1/user" && req.method === "GET") {
      const claims = bearer ? decodePayload(bearer) : undefined;
      const sub = typeof claims?.sub === "string" ? claims.sub : undefined;
      if (!claims || !sub)
        return send(res, 401, {
          code: 401,
          error_code: "bad_jwt",
          msg: "invalid JWT: unable to parse or verify signature",
        });
      if (revoked.has(sub)) {
        return send(res, 403, {
          code: 403,
          error_code: "session_not_found",
          msg: "Session from session_id claim in JWT does not exist",
        });
      }
      return send(res, 200, {
        id: sub,
        aud: "authenticated",
        role: "authenticated",
        email: claims.email ?? null,
        app_metadata: {},
        user_metadata: {},
      });
    }
    if (path === "/auth/v1/invite" && req.method === "POST") {
      if (bearer !== serviceRoleKey)
        return send(res, 403, { code: 403, error_code: "not_admin", msg: "User not allowed" });
      const body = await readJson(req);
      const email = String(body.email ?? "");
      if (!email.includes("@"))
        return send(res, 400, {
          code: 400,
          error_code: "validation_failed",
          msg: "Unable to validate email address: invalid format",
        });
      invited.push(email);
      return send(res, 200, {
        id: randomUUID(),
        aud: "authenticated",
        role: "authenticated",
        email,
        invited_at: new Date().toISOString(),
        app_metadata: {},
        user_metadata: {},
      });
    }
    send(res, 404, { code: 404, error_code: "not_found", msg: "Not found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

  const baseClaims = (userId: string) => ({
    sub: userId,
    aud: "authenticated",
    role: "authenticated",
    email: `${userId.slice(0, 8)}@users.example`,
    iss: `${url}/auth/v1`,
    session_id: randomUUID(),
  });

  return {
    url,
    anonKey,
    serviceRoleKey,
    jwtSecret,
    publicJwk,
    invited,
    otpRequests,
    jwksRequests: () => jwksRequests,
    async accessToken(userId, overrides = {}, header = {}) {
      return new SignJWT({ ...baseClaims(userId), ...overrides })
        .setProtectedHeader({ alg: "ES256", kid, typ: "JWT", ...header })
        .setIssuedAt()
        .setExpirationTime(typeof overrides.exp === "number" ? overrides.exp : "1h")
        .sign(privateKey);
    },
    async legacyToken(userId, overrides = {}) {
      return new SignJWT({ ...baseClaims(userId), ...overrides })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt()
        .setExpirationTime(typeof overrides.exp === "number" ? overrides.exp : "1h")
        .sign(new TextEncoder().encode(jwtSecret));
    },
    revokeSessions: (userId) => void revoked.add(userId),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
