"""Authlib + Flask authorization server for reauth's interop suite (cli/tests/interop/).

Started and stopped by the tests on 127.0.0.1; not a deployment.

    python server.py --issuer URL --http-port N [--https-port N --cert PEM --key PEM]
                     [--access-ttl SECONDS] [--superseded-access 401|403] [--client-jwk JSON]

What it is configured for, as Authlib's documentation describes it:

- Authorization code with PKCE (S256, required) at /authorize, which approves the one test user
  at once (no login page: the tokens still come from the real code flow and the real token
  endpoint).
- Refresh with rotation (``INCLUDE_NEW_REFRESH_TOKEN``); on every refresh the old refresh token
  and the old access token are revoked (``revoke_old_credential``, the application's job in
  Authlib). A revoked refresh token presented again is refused (``invalid_grant``) and counted
  as a reuse.
- One client per client authentication method; ``basic-client`` is registered the default way
  (``client_secret_basic``), and Authlib enforces each client's method. ``jwt-client``
  (``private_key_jwt``, RFC 7523) when ``--client-jwk`` gives its public key.
- RFC 8414 metadata at /.well-known/oauth-authorization-server, for discovery.
- GET /api: the protected resource. An expired access token gets 401 with
  ``WWW-Authenticate: Bearer error="invalid_token"`` (Authlib's ResourceProtector). A token
  revoked by a rotation gets the same 401, or with ``--superseded-access 403`` a bare 403 and
  no challenge, as servers that delete the previous access token on rotation answer (issue 11
  item 10).

GET /__counts answers the numbers the suite reads (JSON): token requests by grant type, how the
client authenticated on each refresh, refresh tokens presented twice, /api answers by status.
Storage is in memory behind one lock; every token request holds it, so a rotation is atomic.
"""

import argparse
import json
import logging
import secrets
import ssl
import sys
import threading
import time
from importlib.metadata import version
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

REDIRECT_URI = "http://127.0.0.1/callback"
SCOPE = "profile"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]

LOCK = threading.RLock()
COUNTS = {
    "token_requests": 0,
    "authorization_code_grants": 0,
    "refresh_calls": 0,
    "refresh_successes": 0,
    "refresh_errors": 0,
    "invalid_client": 0,
    # A refresh token revoked by a rotation presented again.
    "reuse": 0,
    "refresh_basic": 0,
    "refresh_body_secret": 0,
    "refresh_no_secret": 0,
    "refresh_assertion": 0,
    "api_ok": 0,
    "api_401": 0,
    "api_403": 0,
}


def count(name):
    with LOCK:
        COUNTS[name] += 1


class Client(ClientMixin):
    def __init__(self, client_id, secret, method, jwk=None):
        self.client_id = client_id
        self.client_secret = secret
        self.token_endpoint_auth_method = method
        self.jwk = jwk

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return REDIRECT_URI

    def get_allowed_scope(self, scope):
        return " ".join(s for s in (scope or "").split() if s == SCOPE)

    def check_redirect_uri(self, redirect_uri):
        # The registered URI, or the same on any loopback port (RFC 8252 §7.3), for reauth's
        # own login flow, which listens on an ephemeral port.
        url = urlsplit(redirect_uri)
        loopback = url.scheme == "http" and url.hostname == "127.0.0.1" and url.path == "/callback"
        return redirect_uri == REDIRECT_URI or (loopback and not url.query and not url.fragment)

    def check_client_secret(self, client_secret):
        return self.client_secret is not None and secrets.compare_digest(
            self.client_secret, client_secret
        )

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


class User:
    def __init__(self, user_id):
        self.id = user_id

    def get_user_id(self):
        return self.id


class AuthorizationCode(AuthorizationCodeMixin):
    def __init__(self, code, client_id, redirect_uri, scope, user, challenge, method):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.user = user
        self.code_challenge = challenge
        self.code_challenge_method = method
        self.auth_time = int(time.time())

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_auth_time(self):
        return self.auth_time

    def get_nonce(self):
        return None


class Token(TokenMixin):
    def __init__(self, client_id, user, data):
        self.client_id = client_id
        self.user = user
        self.access_token = data["access_token"]
        self.refresh_token = data.get("refresh_token")
        self.scope = data.get("scope", "")
        self.expires_in = int(data["expires_in"])
        self.issued_at = time.time()
        self.access_token_revoked = False
        self.refresh_token_revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return self.access_token_revoked

    def get_user(self):
        return self.user

    def get_client(self):
        return CLIENTS[self.client_id]


CLIENTS = {
    c.client_id: c
    for c in (
        # A secret with characters that must be form-encoded before base64 (RFC 6749 §2.3.1),
        # a space among them: Authlib decodes Basic credentials with `unquote`, which reads a
        # form-encoded space (`+`) as a plus; reauth writes it `%20`, which every decoder reads.
        Client("basic-client", "basic secret:%&+=/", "client_secret_basic"),
        Client("post-client", "post-secret", "client_secret_post"),
        Client("public-client", None, "none"),
    )
}


class PrivateKeyJWT(JWTBearerClientAssertion):
    """`private_key_jwt` (RFC 7523 §2.2): a client assertion signed with the client's key."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, issuer):
        super().__init__(validate_jti=True, leeway=30)
        self.issuer = issuer
        self.seen = set()

    def get_audiences(self):
        return [self.issuer + "/token", self.issuer]

    def validate_jti(self, claims, jti):
        # An assertion is good once (RFC 7523 §3).
        with LOCK:
            if jti in self.seen:
                return False
            self.seen.add(jti)
            return True

    def resolve_client_public_key(self, client):
        return client.jwk
USER = User("alice")
CODES = {}
ACCESS = {}
REFRESH = {}


def save_token(data, req):
    token = Token(req.client.get_client_id(), req.user, data)
    ACCESS[token.access_token] = token
    if token.refresh_token:
        REFRESH[token.refresh_token] = token


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code, req):
        CODES[code] = AuthorizationCode(
            code,
            req.client.get_client_id(),
            req.payload.redirect_uri,
            req.payload.scope,
            req.user,
            req.payload.data.get("code_challenge"),
            req.payload.data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code, client):
        item = CODES.get(code)
        if item and item.client_id == client.get_client_id():
            return item
        return None

    def delete_authorization_code(self, authorization_code):
        CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        token = REFRESH.get(refresh_token)
        if token is None:
            return None
        if token.refresh_token_revoked:
            COUNTS["reuse"] += 1
            return None
        return token

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        refresh_token.refresh_token_revoked = True
        refresh_token.access_token_revoked = True


class Validator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        with LOCK:
            return ACCESS.get(token_string)


def create_app(issuer, access_ttl, superseded_status):
    app = Flask(__name__)
    # Authlib issues refresh tokens only with a generator configured.
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
        "authorization_code": access_ttl,
        "refresh_token": access_ttl,
    }
    server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=save_token)
    server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT(issuer))
    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.get("/authorize")
    def authorize():
        # The test user approves at once.
        with LOCK:
            return server.create_authorization_response(grant_user=USER)

    @app.post("/token")
    def token():
        with LOCK:
            COUNTS["token_requests"] += 1
            grant_type = request.form.get("grant_type")
            response = server.create_token_response()
            if grant_type == "authorization_code":
                COUNTS["authorization_code_grants"] += 1
            elif grant_type == "refresh_token":
                COUNTS["refresh_calls"] += 1
                ok = response.status_code == 200
                COUNTS["refresh_successes" if ok else "refresh_errors"] += 1
                if request.headers.get("Authorization", "").startswith("Basic "):
                    COUNTS["refresh_basic"] += 1
                elif request.form.get("client_assertion"):
                    COUNTS["refresh_assertion"] += 1
                elif request.form.get("client_secret"):
                    COUNTS["refresh_body_secret"] += 1
                else:
                    COUNTS["refresh_no_secret"] += 1
            if response.status_code == 401:
                COUNTS["invalid_client"] += 1
            return response

    @app.get("/api")
    def api():
        header = request.headers.get("Authorization", "")
        if superseded_status == 403 and header.startswith("Bearer "):
            with LOCK:
                known = ACCESS.get(header[len("Bearer "):])
            if known is not None and known.access_token_revoked:
                count("api_403")
                return Response(status=403)
        try:
            token = protect.acquire_token(SCOPE)
        except OAuth2Error as error:
            count("api_401" if error.status_code == 401 else "api_403")
            protect.raise_error_response(error)
        count("api_ok")
        return jsonify(sub=token.user.get_user_id(), scope=token.scope)

    @app.get("/.well-known/oauth-authorization-server")
    def metadata():
        # RFC 8414 metadata, for reauth's discovery.
        return jsonify(
            issuer=issuer,
            authorization_endpoint=issuer + "/authorize",
            token_endpoint=issuer + "/token",
            token_endpoint_auth_methods_supported=AUTH_METHODS,
            grant_types_supported=["authorization_code", "refresh_token"],
            response_types_supported=["code"],
            code_challenge_methods_supported=["S256"],
        )

    @app.get("/__counts")
    def counts():
        with LOCK:
            return jsonify(COUNTS)

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--https-port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--access-ttl", type=int, default=6)
    parser.add_argument("--superseded-access", type=int, choices=(401, 403), default=401)
    parser.add_argument("--client-jwk", help="public JWK (JSON) of jwt-client, private_key_jwt")
    args = parser.parse_args()
    # One line per request on stderr would cost more than the requests themselves.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if args.client_jwk:
        jwk = json.loads(args.client_jwk)
        CLIENTS["jwt-client"] = Client("jwt-client", None, "private_key_jwt", jwk)
    app = create_app(args.issuer, args.access_ttl, args.superseded_access)
    servers = [make_server("127.0.0.1", args.http_port, app, threaded=True)]
    if args.https_port:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        servers.append(
            make_server("127.0.0.1", args.https_port, app, threaded=True, ssl_context=context)
        )
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    # The suite waits for this line before it sends anything.
    print(
        f"ready: Authlib {version('authlib')} Flask {version('flask')}"
        f" superseded access token -> {args.superseded_access}",
        flush=True,
    )
    # Stop with the suite: it kills the process, or closes stdin when it ends.
    sys.stdin.read()


if __name__ == "__main__":
    main()
