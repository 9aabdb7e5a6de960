//! The first tokens, from the real flows: authorization code with PKCE (S256), through
//! oidc-provider's development login and consent pages (plain HTML forms, posted here as a
//! browser would) or Authlib's authorization endpoint (which approves the test user at once),
//! then the code exchanged at the token endpoint with the client's own authentication method.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reauth_core::oauth::ClientAuth;
use reauth_ureq::ureq;
use ring::rand::SecureRandom;

use crate::servers::{Kind, Server};

/// The redirect URI every test client is registered with; never fetched, the code is read
/// from the `Location` that points there.
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// A test client: one per client authentication method, as both servers register them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
    /// `none`: a public client.
    None,
    /// `private_key_jwt` (RFC 7523): a client assertion signed with the client's key (ES256).
    PrivateKeyJwt,
}

impl Method {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub(crate) const fn client_id(self) -> &'static str {
        match self {
            Self::Basic => "basic-client",
            Self::Post => "post-client",
            Self::None => "public-client",
            Self::PrivateKeyJwt => "jwt-client",
        }
    }

    /// The secret the servers register; with characters that form encoding must escape, a space
    /// among them (written `%20` in a Basic header, which Authlib's `unquote` reads back).
    pub(crate) const fn secret(self) -> Option<&'static str> {
        match self {
            Self::Basic => Some("basic secret:%&+=/"),
            Self::Post => Some("post-secret"),
            Self::None | Self::PrivateKeyJwt => None,
        }
    }

    /// How the client presents its [`secret`](Self::secret): in the body for
    /// `client_secret_post`, else in a Basic header.
    pub(crate) const fn client_auth(self) -> ClientAuth {
        match self {
            Self::Post => ClientAuth::Post,
            _ => ClientAuth::Basic,
        }
    }

    /// The server's counter of refresh calls authenticated this way.
    pub(crate) const fn refresh_counter(self) -> &'static str {
        match self {
            Self::Basic => "refresh_basic",
            Self::Post => "refresh_body_secret",
            Self::None => "refresh_no_secret",
            Self::PrivateKeyJwt => "refresh_assertion",
        }
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a form encoding that both
/// `+`-decoding and plain percent-decoding servers read back the same.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A browser's cookies, enough for oidc-provider's interaction cookies (paths ignored: the
/// names differ and the newest value is the one wanted).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, response: &ureq::http::Response<ureq::Body>) {
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.0.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
}

fn location(response: &ureq::http::Response<ureq::Body>) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} answer", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of `name="..."` attribute `attr` in the first tag that has it, in the dev pages.
fn attribute<'a>(html: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let value = &tag[tag.find(&format!("{attr}=\""))? + attr.len() + 2..];
    Some(&value[..value.find('"')?])
}

/// Plays the browser from the authorization URL `url` on: follows the server's redirects with
/// its cookies, signs in and consents on oidc-provider's development pages (Authlib's endpoint
/// approves at once), and returns the URL the server finally sends the browser to, which
/// starts with `redirect_uri`. At most 12 steps.
pub(crate) fn browse(server: &Server, url: &str, redirect_uri: &str) -> String {
    let agent = server.agent();
    let base = server.base();
    let mut url = url.to_owned();
    let mut jar = Jar::default();
    // Authorization request, login page, consent page, and the redirects between them.
    for _ in 0..12 {
        let mut response =
            agent.get(&url).header("cookie", jar.header()).call().expect("authorization step");
        jar.take(&response);
        if response.status().is_redirection() {
            let next = location(&response);
            if next.starts_with(redirect_uri) {
                return next;
            }
            url = if next.starts_with('/') { format!("{base}{next}") } else { next };
            continue;
        }
        let page = response.body_mut().read_to_string().unwrap();
        assert_eq!(response.status(), 200, "{url}: {page}");
        // oidc-provider's development interaction: a form whose hidden `prompt` says which.
        let action = attribute(&page, "method=\"post\"", "action").expect("a form").to_owned();
        let prompt = attribute(&page, "name=\"prompt\"", "value").expect("a prompt field");
        let fields = match prompt {
            "login" => form(&[("prompt", "login"), ("login", "alice"), ("password", "any")]),
            "consent" => form(&[("prompt", "consent")]),
            other => panic!("unexpected interaction {other}"),
        };
        let response = agent
            .post(&action)
            .header("cookie", jar.header())
            .header("content-type", "application/x-www-form-urlencoded")
            .send(fields)
            .unwrap();
        jar.take(&response);
        assert!(response.status().is_redirection(), "{action}: {}", response.status());
        url = location(&response);
    }
    panic!("the flow did not reach {redirect_uri} within 12 steps");
}

/// Runs the authorization-code + PKCE flow for `method`'s client and returns the token
/// endpoint's answer (a JSON token response with a refresh token).
pub(crate) fn login(server: &Server, method: Method) -> Vec<u8> {
    let agent = server.agent();
    let base = server.base();
    let random = ring::rand::SystemRandom::new();
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge =
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    random.fill(&mut bytes[..16]).unwrap();
    let state = URL_SAFE_NO_PAD.encode(&bytes[..16]);
    let (path, scope) = match server.kind {
        // Refresh tokens only with offline_access and a consent prompt (TECH-NOTES §15).
        Kind::OidcProvider => ("/auth", "openid offline_access"),
        Kind::Authlib { .. } => ("/authorize", "profile"),
    };
    let mut query = vec![
        ("client_id", method.client_id()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", &state),
    ];
    if server.kind == Kind::OidcProvider {
        query.push(("prompt", "consent"));
    }
    let back = browse(server, &format!("{base}{path}?{}", form(&query)), REDIRECT_URI);
    let query = back.strip_prefix(REDIRECT_URI).and_then(|q| q.strip_prefix('?')).unwrap();
    let params: BTreeMap<_, _> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert_eq!(params.get("state"), Some(&state), "state round trip");
    let code = params.get("code").expect("code in the redirect").clone();
    let mut body = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let assertion;
    let mut request = agent
        .post(format!("{base}{}", server.kind.token_path()))
        .header("content-type", "application/x-www-form-urlencoded");
    match (method, method.secret()) {
        (Method::Basic, Some(secret)) => {
            let credentials = format!("{}:{}", escape(method.client_id()), escape(secret));
            request =
                request.header("authorization", format!("Basic {}", STANDARD.encode(credentials)));
        }
        (Method::PrivateKeyJwt, _) => {
            assertion = client_assertion(server, &format!("{base}{}", server.kind.token_path()));
            body.push(("client_assertion_type", ASSERTION_TYPE));
            body.push(("client_assertion", &assertion));
        }
        (_, secret) => {
            body.push(("client_id", method.client_id()));
            if let Some(secret) = secret {
                body.push(("client_secret", secret));
            }
        }
    }
    let mut response = request.send(form(&body)).unwrap();
    let answer = response.body_mut().read_to_vec().unwrap();
    assert_eq!(
        response.status(),
        200,
        "code exchange for {}: {}",
        method.name(),
        // An error body holds no token.
        String::from_utf8_lossy(&answer)
    );
    answer
}

/// The `refresh_token` of a token response, for seeding `reauth get`'s store.
pub(crate) fn refresh_token(answer: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(answer).unwrap();
    json["refresh_token"].as_str().expect("a refresh token in the code exchange").to_owned()
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A `private_key_jwt` client assertion for the code exchange, signed here with ring (ES256:
/// the JWS signature is r || s, what ring's fixed-length ECDSA gives).
fn client_assertion(server: &Server, audience: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &server.pki.client_key_pkcs8,
        &rng,
    )
    .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut jti = [0u8; 16];
    rng.fill(&mut jti).unwrap();
    let header =
        serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": crate::servers::CLIENT_KEY_ID});
    let claims = serde_json::json!({
        "iss": "jwt-client", "sub": "jwt-client", "aud": audience,
        "jti": URL_SAFE_NO_PAD.encode(jti), "iat": now, "exp": now + 60,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}
