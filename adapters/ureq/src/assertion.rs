//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): instead of
//! a shared secret, the client signs a short-lived JWT with its private key and sends it as
//! `client_assertion`; the server checks it with the public key registered for the client.
//!
//! Signing is done by [jsonwebtoken] 9 on ring, the crypto library rustls already brings into
//! every reauth-ureq build, so the feature adds no second crypto stack (jsonwebtoken 10 and later
//! need aws-lc-rs or the RustCrypto crates instead).

use core::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use zeroize::Zeroizing;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: long enough to cross a slow network and a little clock
/// skew, short enough that a captured one is soon useless.
const LIFETIME_SECS: u64 = 60;

/// A private key that signs `private_key_jwt` client assertions, RS256 (RSA, 2048 bits or
/// more) or ES256 (ECDSA P-256). `Debug` shows the algorithm and key id, never the key.
///
/// Each assertion carries `iss` = `sub` = the client id, `aud` = the token endpoint, a random
/// `jti`, `iat` and an `exp` 60 s later.
///
/// # Examples
///
/// ```no_run
/// use reauth_ureq::{Client, ClientAssertionKey};
///
/// let key = ClientAssertionKey::from_pem(&std::fs::read("client-key.pem")?)?.key_id("key-1");
/// let client = Client::builder()
///     .issuer("https://auth.example.com")
///     .client_id("my-app")
///     .private_key_jwt(key)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientAssertionKey {
    key: EncodingKey,
    algorithm: Algorithm,
    key_id: Option<String>,
}

/// Why a key cannot sign client assertions. Never shows the key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM holds no private key of a supported kind (an RSA key in PKCS#1 or PKCS#8, or a
    /// P-256 key in PKCS#8).
    Unsupported(String),
    /// The key was read but cannot sign (for example an RSA key under 2048 bits, or the
    /// algorithm does not fit the key).
    CannotSign(String),
}

impl ClientAssertionKey {
    /// An RSA private key (PEM, `RSA PRIVATE KEY` or `PRIVATE KEY`) signing RS256.
    ///
    /// # Errors
    /// [`KeyError`] if the PEM holds no RSA key or the key cannot sign.
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key =
            EncodingKey::from_rsa_pem(pem).map_err(|e| KeyError::Unsupported(e.to_string()))?;
        Self::checked(key, Algorithm::RS256)
    }

    /// A P-256 private key (PEM, PKCS#8 `PRIVATE KEY`) signing ES256.
    ///
    /// # Errors
    /// [`KeyError`] if the PEM holds no P-256 key or the key cannot sign.
    pub fn es256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key =
            EncodingKey::from_ec_pem(pem).map_err(|e| KeyError::Unsupported(e.to_string()))?;
        Self::checked(key, Algorithm::ES256)
    }

    /// An RSA (RS256) or P-256 (ES256) private key, whichever the PEM holds.
    ///
    /// # Errors
    /// [`KeyError`] if it holds neither, or the key cannot sign.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        Self::rs256_pem(pem).or_else(|rsa| {
            Self::es256_pem(pem).map_err(|ec| match (rsa, ec) {
                // A key that was read but could not sign says more than "not the other kind".
                (KeyError::CannotSign(why), _) | (_, KeyError::CannotSign(why)) => {
                    KeyError::CannotSign(why)
                }
                (KeyError::Unsupported(rsa), KeyError::Unsupported(ec)) => KeyError::Unsupported(
                    format!("neither an RSA key ({rsa}) nor a P-256 key ({ec})"),
                ),
            })
        })
    }

    /// Names the key in the assertion's header (`kid`), for a server that holds several keys
    /// of the client (a JWKS).
    #[must_use]
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// `RS256` or `ES256`.
    #[must_use]
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::ES256 => "ES256",
            _ => "RS256",
        }
    }

    /// Signs once, so that a key that cannot sign is refused when it is given rather than at
    /// the first refresh.
    fn checked(key: EncodingKey, algorithm: Algorithm) -> Result<Self, KeyError> {
        let key = Self { key, algorithm, key_id: None };
        key.sign("check", "https://check.invalid/token")
            .map_err(|e| KeyError::CannotSign(e.to_string()))?;
        Ok(key)
    }

    /// A fresh assertion for `client_id` at `audience` (the token endpoint's URL), wiped on drop.
    pub(crate) fn sign(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<Zeroizing<String>, jsonwebtoken::errors::Error> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            jti: &'a str,
            iat: u64,
            exp: u64,
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.key_id);
        let jti = random_id();
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: audience,
            jti: &jti,
            iat: now,
            exp: now + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map(Zeroizing::new)
    }
}

/// 128 random bits as hex: a `jti` no server has seen before (RFC 7523 §3 lets it refuse a
/// repeated one).
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The system's random source does not fail on any platform ring supports; if it did, the
    // time in nanoseconds still differs from every earlier assertion of this client.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Debug for ClientAssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertionKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(why) => write!(f, "unsupported client assertion key: {why}"),
            Self::CannotSign(why) => write!(f, "the client assertion key cannot sign: {why}"),
        }
    }
}

impl core::error::Error for KeyError {}
