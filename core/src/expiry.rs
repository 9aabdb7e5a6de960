//! Deciding whether a response means "the access token expired": by status, by the
//! `WWW-Authenticate` challenge, or by an API's own code in a JSON body (the classic
//! `{"code":409}`). Shared by both adapters so they agree on what expiry looks like.

use crate::coordinator::Verdict;
use crate::json::{self, Members, Value, same};

/// What counts as "token expired" for one API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryRule<'a> {
    /// Statuses that always mean expired (default: 401 only).
    pub statuses: &'a [u16],
    /// An expiry code inside a JSON body, for APIs that answer expiry with a 200.
    pub body_code: Option<BodyCode<'a>>,
}

/// A top-level integer field of a JSON body whose value signals expiry, e.g. `code` = 409.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyCode<'a> {
    /// Name of the top-level field, e.g. `"code"`.
    pub field: &'a str,
    /// Values of the field that mean "token expired".
    pub values: &'a [i64],
}

impl ExpiryRule<'static> {
    /// 401 and nothing else: the OAuth 2.0 bearer token convention (RFC 6750 §3.1).
    pub const STATUS_401: Self = Self { statuses: &[401], body_code: None };
}

impl ExpiryRule<'_> {
    /// True if the rule needs to see the body to judge a response with this status.
    #[must_use]
    pub const fn needs_body(&self) -> bool {
        self.body_code.is_some()
    }

    /// Judges a response. `body` is the (possibly partial) body read so far, when
    /// [`needs_body`](Self::needs_body); a body that is not JSON never means expired.
    #[must_use]
    ///
    /// A 403 that the statuses do not list is [`Verdict::Forbidden`]: the coordinator replays it
    /// only when it answered an older token than the current one.
    pub fn verdict(&self, status: u16, body: Option<&[u8]>) -> Verdict {
        if self.statuses.contains(&status) {
            return Verdict::Expired;
        }
        match (self.body_code, body) {
            (Some(rule), Some(body)) if rule.matches(body) => Verdict::Expired,
            _ if status == 403 => Verdict::Forbidden,
            _ => Verdict::Accepted,
        }
    }
}

impl Default for ExpiryRule<'static> {
    fn default() -> Self {
        Self::STATUS_401
    }
}

impl BodyCode<'_> {
    /// True if `body` is a whole, well-formed JSON object whose field holds one of the values as
    /// an integer (`409`, not `"409"` or `409.0`).
    ///
    /// Keys are compared as written, escapes and all. If the field appears more than once, the
    /// first one counts. A truncated or malformed body never matches.
    #[must_use]
    pub fn matches(&self, body: &[u8]) -> bool {
        let mut code = None;
        let mut members = Members::new(body);
        loop {
            match members.next() {
                Ok(Some((key, value))) if same(key, self.field.as_bytes()) => {
                    code.get_or_insert(value);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        // Not `contains`: for `i64` it is unrolled eight-fold, about 150 bytes more flash.
        #[allow(clippy::manual_contains)]
        let listed = |v: i64| self.values.iter().any(|&x| x == v);
        matches!(code, Some(Value::Num(n)) if json::integer(n).is_some_and(listed))
    }
}

/// True if a `WWW-Authenticate` value is a Bearer challenge with `error="invalid_token"`
/// (RFC 6750 §3.1): the server says the token expired or was revoked, not that it lacks scope.
#[must_use]
pub fn is_invalid_token_challenge(value: &[u8]) -> bool {
    let starts_bearer = value.len() >= 6 && value[..6].eq_ignore_ascii_case(b"bearer");
    starts_bearer && value.windows(13).any(|w| w.eq_ignore_ascii_case(b"invalid_token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSIC: ExpiryRule<'static> = ExpiryRule {
        statuses: &[401],
        body_code: Some(BodyCode { field: "code", values: &[409] }),
    };

    #[test]
    fn status_rule() {
        assert_eq!(ExpiryRule::STATUS_401.verdict(401, None), Verdict::Expired);
        // A 403 is the coordinator's to judge against the token's generation.
        assert_eq!(ExpiryRule::STATUS_401.verdict(403, None), Verdict::Forbidden);
        assert_eq!(ExpiryRule::STATUS_401.verdict(404, None), Verdict::Accepted);
        let both = ExpiryRule { statuses: &[401, 403], body_code: None };
        assert_eq!(both.verdict(403, None), Verdict::Expired);
        assert_eq!(
            ExpiryRule::STATUS_401.verdict(200, Some(br#"{"code":409}"#)),
            Verdict::Accepted
        );
        assert!(!ExpiryRule::STATUS_401.needs_body());
    }

    #[test]
    fn classic_body_code_rule() {
        assert!(CLASSIC.needs_body());
        assert_eq!(
            CLASSIC.verdict(200, Some(br#"{"code":409,"message":"expired"}"#)),
            Verdict::Expired
        );
        assert_eq!(
            CLASSIC.verdict(200, Some(br#"{"data":{"code":409},"list":[1,{"a":2}],"code":409}"#)),
            Verdict::Expired
        );
        assert_eq!(
            CLASSIC.verdict(200, Some(br#"{"code":200,"data":{"code":409}}"#)),
            Verdict::Accepted
        );
        assert_eq!(CLASSIC.verdict(200, Some(br#"{"code":"409"}"#)), Verdict::Accepted);
        assert_eq!(CLASSIC.verdict(200, Some(b"not json")), Verdict::Accepted);
        assert_eq!(CLASSIC.verdict(200, Some(br#"[409]"#)), Verdict::Accepted);
        assert_eq!(CLASSIC.verdict(200, Some(br#"{"code":409"#)), Verdict::Accepted);
        assert_eq!(CLASSIC.verdict(200, None), Verdict::Accepted);
    }

    #[test]
    fn body_code_edge_cases() {
        let expired = |body: &[u8]| CLASSIC.verdict(200, Some(body)) == Verdict::Expired;
        assert!(expired(br#" {"code" : 409 } "#));
        assert!(expired(br#"{"code":409,"code":200}"#), "the first one counts");
        assert!(!expired(br#"{"code":200,"code":409}"#));
        assert!(!expired(br#"{"code":"x","code":409}"#));
        assert!(!expired(br#"{"code":409.0}"#));
        assert!(!expired(br#"{"code":4.09e2}"#));
        assert!(!expired(br#"{"code":null}"#));
        assert!(!expired(br#"{"c\u006fde":409}"#), "keys are compared as written");
        assert!(!expired(br#"{"code":409} trailing"#));
        assert!(!expired(br#"{"code":409,"x":tru}"#));
        assert!(!expired(br#"{"code":0409}"#));
        let many = BodyCode { field: "status", values: &[-1, i64::MAX] };
        assert!(many.matches(br#"{"status":-1}"#));
        assert!(many.matches(br#"{"status":9223372036854775807}"#));
        assert!(!many.matches(br#"{"status":9223372036854775808}"#));
        assert!(!many.matches(br#"{"code":-1}"#));
    }

    #[test]
    fn bearer_invalid_token_challenge() {
        assert!(is_invalid_token_challenge(
            br#"Bearer error="invalid_token", error_description="expired""#
        ));
        assert!(is_invalid_token_challenge(br#"bearer realm="api", error="INVALID_TOKEN""#));
        assert!(!is_invalid_token_challenge(br#"Bearer error="insufficient_scope""#));
        assert!(!is_invalid_token_challenge(br#"Basic realm="invalid_token""#));
        assert!(!is_invalid_token_challenge(b"Bear"));
    }
}
