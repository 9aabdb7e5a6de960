//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): the
//! issuer checks a `client_assertion` against the public key registered in
//! [`IssuerConfig::client_assertion_key`](super::IssuerConfig::client_assertion_key), the way a
//! real server does, so that a client's assertions are tested end to end.

use core::cell::RefCell;
use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The `client_assertion_type` of a JWT client assertion.
pub(super) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `jti`s of the assertions accepted so far: RFC 7523 §3 lets a server refuse a repeated one,
/// and this one does, so a client that reuses an assertion is caught.
#[derive(Default)]
pub(super) struct SeenAssertions(RefCell<HashSet<String>>);

/// Checks `assertion` from `client_id` for the token endpoint `audience` against the public key
/// `public_pem` (SPKI PEM, RSA for RS256 or P-256 for ES256). Returns why it is refused.
pub(super) fn check(
    assertion: &str,
    public_pem: &str,
    client_id: Option<&str>,
    audience: &str,
    seen: &SeenAssertions,
) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        exp: u64,
        jti: Option<String>,
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| format!("header: {e}"))?;
    let key = match header.alg {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(public_pem.as_bytes()),
        Algorithm::ES256 => DecodingKey::from_ec_pem(public_pem.as_bytes()),
        other => return Err(format!("algorithm {other:?} is not accepted")),
    }
    .map_err(|e| format!("registered key: {e}"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Claims>(assertion, &key, &validation)
        .map_err(|e| format!("assertion: {e}"))?
        .claims;
    if claims.iss != claims.sub || client_id.is_some_and(|id| id != claims.iss) {
        return Err("iss and sub must be the client id".to_owned());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if claims.exp > now + 300 {
        return Err("the assertion lives longer than 5 minutes".to_owned());
    }
    let jti = claims.jti.ok_or("no jti")?;
    if !seen.0.borrow_mut().insert(jti) {
        return Err("the assertion was used before (jti)".to_owned());
    }
    Ok(())
}
