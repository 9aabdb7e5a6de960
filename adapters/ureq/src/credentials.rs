//! Who the client is at the authorization server and how it proves it (RFC 6749 §2.3): one
//! type shared by the refresh grant ([`ClientBuilder`](crate::ClientBuilder)), the device grant
//! ([`DeviceLogin`](crate::DeviceLogin)) and anything else that posts a form to the server, so
//! that every request authenticates the same way.

use core::fmt;

use reauth_core::oauth::{self, BufferTooSmall, ClientAuth, RefreshParams};
use std::sync::Arc;

use zeroize::Zeroizing;

#[cfg(feature = "private-key-jwt")]
use crate::assertion::ASSERTION_TYPE;

/// The credentials could not be put into a request (a signing failure, an encoder that
/// disagreed with its own size). Never holds a secret.
#[derive(Debug)]
pub(crate) struct EncodeError(pub(crate) String);
use crate::wire::{Masked, Masks};

/// Without the feature there is never an assertion; the name keeps `form` in one piece.
#[cfg(not(feature = "private-key-jwt"))]
const ASSERTION_TYPE: &str = "";

/// The client's identity and secret, and the `scope` it asks for. `Debug` hides the secret.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    /// `client_id`.
    pub(crate) client_id: Option<String>,
    /// The client secret, wiped on drop; `None` for a public client.
    pub(crate) secret: Option<Zeroizing<String>>,
    /// The method the application asked for; `None`: chosen (Basic with a secret, or from the
    /// server's metadata).
    pub(crate) method: Option<ClientAuth>,
    /// `scope`.
    pub(crate) scope: Option<String>,
    /// The key of `private_key_jwt`; when set, it authenticates instead of any secret.
    #[cfg(feature = "private-key-jwt")]
    pub(crate) key: Option<Arc<crate::assertion::ClientAssertionKey>>,
}

/// What one request carries to authenticate: an `Authorization` header, body parameters, or
/// neither. Wiped on drop.
pub(crate) struct Authentication<'a> {
    /// `Authorization: Basic ...` for `client_secret_basic`.
    pub(crate) header: Option<Zeroizing<String>>,
    /// The form parameters besides the grant's own.
    pub(crate) params: RefreshParams<'a>,
    /// A signed `client_assertion` for `private_key_jwt`.
    assertion: Option<Zeroizing<String>>,
}

impl Credentials {
    /// Whether a `private_key_jwt` key authenticates.
    pub(crate) const fn has_key(&self) -> bool {
        #[cfg(feature = "private-key-jwt")]
        return self.key.is_some();
        #[cfg(not(feature = "private-key-jwt"))]
        false
    }

    /// The method in force: none without a secret, else the one asked for, Basic by default
    /// (the method every server must support, RFC 6749 §2.3.1).
    pub(crate) fn method(&self) -> ClientAuth {
        match (&self.secret, self.method) {
            (None, _) => ClientAuth::None,
            (Some(_), Some(method)) => method,
            (Some(_), None) => ClientAuth::Basic,
        }
    }

    /// Takes the method from the server's `token_endpoint_auth_methods_supported` unless the
    /// application chose one: `client_secret_basic` when listed (or when the list is absent:
    /// RFC 8414 §2's default), else `client_secret_post` when listed.
    pub(crate) fn choose_from(&mut self, supported: &[String]) {
        if self.method.is_some() || self.secret.is_none() {
            return;
        }
        let listed = |name: &str| supported.iter().any(|m| m == name);
        if !supported.is_empty() && !listed("client_secret_basic") && listed("client_secret_post") {
            self.method = Some(ClientAuth::Post);
        }
    }

    /// The header and body parameters of one request to an endpoint of the server whose token
    /// endpoint is `token_url` (the audience of a client assertion). With Basic, the credentials
    /// travel in the header only: one authentication method per request (§2.3).
    pub(crate) fn authenticate(&self, token_url: &str) -> Result<Authentication<'_>, EncodeError> {
        #[cfg(feature = "private-key-jwt")]
        if let Some(key) = &self.key {
            let id = self.client_id.as_deref().unwrap_or_default();
            let assertion = key.sign(id, token_url).map_err(|e| EncodeError(e.to_string()))?;
            return Ok(Authentication {
                header: None,
                params: RefreshParams {
                    client_id: self.client_id.as_deref(),
                    client_secret: None,
                    scope: self.scope.as_deref(),
                },
                assertion: Some(assertion),
            });
        }
        let _ = token_url;
        let secret = self.secret.as_deref().map(String::as_str);
        let method = self.method();
        let header = match (method, secret) {
            (ClientAuth::Basic, Some(secret)) => {
                let id = self.client_id.as_deref().unwrap_or_default();
                Some(basic_authorization(id, secret)?)
            }
            _ => None,
        };
        let params = RefreshParams {
            client_id: if header.is_some() { None } else { self.client_id.as_deref() },
            client_secret: if method == ClientAuth::Post { secret } else { None },
            scope: self.scope.as_deref(),
        };
        Ok(Authentication { header, params, assertion: None })
    }
}

impl Authentication<'_> {
    /// Writes a form with `encode` (one of the core's body writers) into a wiped buffer sized by
    /// a first, empty call, so that the body, which holds a refresh token, a device code or a
    /// secret, exists once, in a buffer wiped on drop.
    pub(crate) fn form(
        &self,
        encode: impl Fn(&mut [u8], &RefreshParams<'_>) -> Result<usize, BufferTooSmall>,
    ) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
        let needed = match encode(&mut [], &self.params) {
            Ok(n) => n,
            Err(too_small) => too_small.needed,
        };
        // The assertion's part is sized in too, so that the buffer never grows (a grown buffer
        // leaves an unwiped copy behind).
        let tail = self.assertion.as_ref().map_or(0, |jwt| {
            "&client_assertion_type=&client_assertion=".len() + 3 * ASSERTION_TYPE.len() + jwt.len()
        });
        let mut form = Zeroizing::new(Vec::with_capacity(needed + tail));
        form.resize(needed, 0);
        let len = encode(&mut form, &self.params).map_err(|e| EncodeError(e.to_string()))?;
        form.truncate(len);
        if let Some(jwt) = &self.assertion {
            if !form.is_empty() {
                form.push(b'&');
            }
            form.extend_from_slice(b"client_assertion_type=");
            // The type is a URN: its colons are the only characters to encode. The JWT is
            // base64url and dots, all unreserved.
            for &byte in ASSERTION_TYPE.as_bytes() {
                match byte {
                    b':' => form.extend_from_slice(b"%3A"),
                    other => form.push(other),
                }
            }
            form.extend_from_slice(b"&client_assertion=");
            form.extend_from_slice(jwt.as_bytes());
        }
        Ok(form)
    }

    /// Adds the `Authorization` header, if the method uses one, as a placeholder that the
    /// agent's wire filter (built with `masks`) swaps for the value; keep the returned guard
    /// until the request is done.
    pub(crate) fn apply<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        masks: &Arc<Masks>,
    ) -> (ureq::RequestBuilder<B>, Option<Masked>) {
        match &self.header {
            Some(value) => {
                // The scheme stays readable in a trace; the credentials are masked.
                let (scheme, credentials) = value.split_once(' ').unwrap_or(("", value));
                let mask = masks.mask(credentials);
                (request.header("Authorization", format!("{scheme} {}", mask.as_str())), Some(mask))
            }
            None => (request, None),
        }
    }
}

/// The `Authorization` value for `client_secret_basic`, in a string wiped on drop.
fn basic_authorization(id: &str, secret: &str) -> Result<Zeroizing<String>, EncodeError> {
    let needed = match oauth::write_basic_authorization(&mut [], id, secret) {
        Ok(n) => n,
        Err(too_small) => too_small.needed,
    };
    let mut value = Zeroizing::new(vec![0u8; needed]);
    let len = oauth::write_basic_authorization(&mut value, id, secret)
        .map_err(|e| EncodeError(e.to_string()))?;
    // Base64 and "Basic " are ASCII.
    let text = core::str::from_utf8(&value[..len]).map_err(|e| EncodeError(e.to_string()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("client_auth", &self.method())
            .field("scope", &self.scope)
            .field("private_key_jwt", &self.has_key())
            .finish()
    }
}
