// oidc-provider for reauth's interop suite (cli/tests/interop/). Started and stopped by the
// tests on 127.0.0.1; not a deployment.
//
//   node server.mjs --issuer URL --http-port N [--https-port N --cert PEM --key PEM]
//                   [--access-ttl SECONDS] [--client-jwk JSON]
//
// Rotation on (`rotateRefreshToken`), and oidc-provider's own reuse detection: a consumed
// refresh token presented again revokes the whole grant. `clockTolerance` 0, so a 6 s access
// token is refused after 6 s (the default, 15 s, would accept it for ~21 s). One client per
// client authentication method (`jwt-client`, private_key_jwt, when --client-jwk gives its
// public key). The development login and consent pages (plain HTML forms)
// give the tokens through authorization code + PKCE.
//
// The suite reads `GET /__counts` (JSON), counted here because oidc-provider keeps no such
// numbers: token requests by grant type, how the client authenticated on each refresh, refresh
// tokens presented twice, userinfo answers by status. Node's HTTP servers keep their default
// keep-alive timeout (5 s), which is part of what is tested.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'http-port': { type: 'string' },
    'https-port': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'access-ttl': { type: 'string', default: '6' },
    // Public JWK (JSON) of jwt-client, which authenticates with private_key_jwt.
    'client-jwk': { type: 'string' },
  },
});
if (!args.issuer || !args['http-port']) {
  console.error('usage: node server.mjs --issuer URL --http-port N [--https-port N --cert PEM --key PEM] [--access-ttl S]');
  process.exit(2);
}
const accessTtl = Number(args['access-ttl']);

// Redirect URI of every client: never fetched, the suite reads the code from the Location.
const REDIRECT_URI = 'http://127.0.0.1/callback';
// Native clients: any loopback port is allowed in the redirect URI (RFC 8252 §7.3), for
// reauth's own login flow, which listens on an ephemeral port.
const common = {
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [REDIRECT_URI],
};
const clients = [
  { ...common, client_id: 'basic-client', client_secret: 'basic secret:%&+=/', token_endpoint_auth_method: 'client_secret_basic' },
  { ...common, client_id: 'post-client', client_secret: 'post-secret', token_endpoint_auth_method: 'client_secret_post' },
  { ...common, client_id: 'public-client', token_endpoint_auth_method: 'none' },
];
if (args['client-jwk']) {
  clients.push({
    ...common,
    client_id: 'jwt-client',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [JSON.parse(args['client-jwk'])] },
  });
}

const counts = {
  token_requests: 0,
  authorization_code_grants: 0,
  refresh_calls: 0,
  refresh_successes: 0,
  refresh_errors: 0,
  // A consumed refresh token presented again (oidc-provider then revokes the grant).
  reuse: 0,
  // How each refresh call authenticated: an `Authorization: Basic` header, a secret in the
  // body, or neither (public client).
  refresh_basic: 0,
  refresh_body_secret: 0,
  refresh_no_secret: 0,
  refresh_assertion: 0,
  userinfo_ok: 0,
  userinfo_401: 0,
  userinfo_other: 0,
  connections: 0,
};

const provider = new Provider(args.issuer, {
  clients,
  clockTolerance: 0,
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 3600,
  },
  scopes: ['openid', 'offline_access'],
  pkce: { required: () => true },
  cookies: { keys: ['reauth-interop-not-a-secret'] },
  features: { devInteractions: { enabled: true }, userinfo: { enabled: true } },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
});

provider.on('grant.error', (ctx, err) => {
  if (err instanceof errors.InvalidGrant && err.error_description === 'refresh token already used') {
    counts.reuse += 1;
  }
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/__counts' && ctx.method === 'GET') {
    ctx.body = counts;
    return;
  }
  const isToken = ctx.path === '/token' && ctx.method === 'POST';
  const isUserinfo = ctx.path === '/me';
  await next();
  if (isToken) {
    counts.token_requests += 1;
    const grantType = ctx.oidc?.params?.grant_type;
    if (grantType === 'authorization_code') counts.authorization_code_grants += 1;
    if (grantType === 'refresh_token') {
      counts.refresh_calls += 1;
      if (ctx.status === 200) counts.refresh_successes += 1;
      else counts.refresh_errors += 1;
      const authorization = ctx.headers.authorization ?? '';
      if (authorization.startsWith('Basic ')) counts.refresh_basic += 1;
      else if (ctx.oidc?.params?.client_assertion) counts.refresh_assertion += 1;
      else if (ctx.oidc?.params?.client_secret) counts.refresh_body_secret += 1;
      else counts.refresh_no_secret += 1;
    }
  } else if (isUserinfo) {
    if (ctx.status === 200) counts.userinfo_ok += 1;
    else if (ctx.status === 401) counts.userinfo_401 += 1;
    else counts.userinfo_other += 1;
  }
});

const callback = provider.callback();
const servers = [http.createServer(callback)];
if (args['https-port']) {
  servers.push(https.createServer({ cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) }, callback));
}
const ports = [args['http-port'], args['https-port']];
let listening = 0;
servers.forEach((server, i) => {
  server.on('connection', () => { counts.connections += 1; });
  server.listen(Number(ports[i]), '127.0.0.1', () => {
    listening += 1;
    if (listening === servers.length) {
      // The suite waits for this line before it sends anything.
      console.log(`ready: oidc-provider ${args.issuer} (keep-alive timeout ${servers[0].keepAliveTimeout} ms)`);
    }
  });
});
// Stop with the suite: it kills the process, or closes stdin when it ends.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
