//! Deciding whether a response means "the access token expired": by status, by the
//! `WWW-Authenticate` challenge, or by an API's own code in a JSON body (the classic
//! `{"code":409}`). Shared by both adapters so they agree on what expiry looks like.

use core::fmt;

use crate::coordinator::Verdict;
use crate::json::{self, Members, Value, same};

/// What counts as "token expired" for one API. Built from a constant
/// ([`STATUS_401`](Self::STATUS_401), [`STATUS_401_403`](Self::STATUS_401_403)) or
/// [`statuses`](Self::statuses), then [`body_code`](Self::body_code) for an API that also
/// answers expiry in its body; [`body_code_only`](Self::body_code_only) for one that never says
/// it with a status. An empty status list is an error, so the 401 rule cannot be dropped by
/// accident. Both adapters take this rule (reauth-ureq's `Expiry` is built from one).
///
/// ```
/// use reauth_core::expiry::{BodyCode, ExpiryRule};
///
/// const CLASSIC: ExpiryRule<'static> =
///     ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });
/// let both = ExpiryRule::statuses(&[401, 419])?;
/// assert!(ExpiryRule::statuses(&[]).is_err());
/// # Ok::<(), reauth_core::expiry::EmptyStatusList>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryRule<'a> {
    /// Statuses that always mean expired; empty only for a body-code-only rule.
    statuses: &'a [u16],
    /// An expiry code inside a JSON body, for APIs that answer expiry with a 200.
    body_code: Option<BodyCode<'a>>,
}

/// [`ExpiryRule::statuses`] was given no status: that would silently drop the 401 rule. An API
/// that signals expiry only in the body says so with [`ExpiryRule::body_code_only`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EmptyStatusList;

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
    /// 401 or 403 for every token, for APIs that answer an expired token with a 403 (without
    /// it, a 403 is replayed only when it answered an older token than the current one).
    pub const STATUS_401_403: Self = Self { statuses: &[401, 403], body_code: None };
}

impl<'a> ExpiryRule<'a> {
    /// Expired means one of `statuses`.
    ///
    /// # Errors
    /// [`EmptyStatusList`] if `statuses` is empty.
    pub const fn statuses(statuses: &'a [u16]) -> Result<Self, EmptyStatusList> {
        if statuses.is_empty() {
            return Err(EmptyStatusList);
        }
        Ok(Self { statuses, body_code: None })
    }

    /// Expired means a JSON body with this code, whatever the status: for APIs that never
    /// signal expiry with a status (not even 401).
    #[must_use]
    pub const fn body_code_only(code: BodyCode<'a>) -> Self {
        Self { statuses: &[], body_code: Some(code) }
    }

    /// Also expired: a JSON body with this code (e.g. `{"code":409}` with a 200).
    #[must_use]
    pub const fn body_code(self, code: BodyCode<'a>) -> Self {
        Self { statuses: self.statuses, body_code: Some(code) }
    }

    /// The statuses that mean expired (empty for a body-code-only rule).
    #[must_use]
    pub const fn status_list(&self) -> &'a [u16] {
        self.statuses
    }

    /// The body-code rule, if any.
    #[must_use]
    pub const fn body_code_rule(&self) -> Option<BodyCode<'a>> {
        self.body_code
    }

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

impl fmt::Display for EmptyStatusList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an expiry rule needs at least one status (use body_code_only for none)")
    }
}

impl core::error::Error for EmptyStatusList {}

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

    const CLASSIC: ExpiryRule<'static> =
        ExpiryRule::STATUS_401.body_code(BodyCode { field: "code", values: &[409] });

    #[test]
    fn status_rule() {
        assert_eq!(ExpiryRule::STATUS_401.verdict(401, None), Verdict::Expired);
        // A 403 is the coordinator's to judge against the token's generation.
        assert_eq!(ExpiryRule::STATUS_401.verdict(403, None), Verdict::Forbidden);
        assert_eq!(ExpiryRule::STATUS_401.verdict(404, None), Verdict::Accepted);
        assert_eq!(ExpiryRule::STATUS_401_403.verdict(403, None), Verdict::Expired);
        assert_eq!(ExpiryRule::statuses(&[401, 403]), Ok(ExpiryRule::STATUS_401_403));
        assert_eq!(ExpiryRule::statuses(&[]), Err(EmptyStatusList));
        let only_body = ExpiryRule::body_code_only(BodyCode { field: "code", values: &[409] });
        assert_eq!(only_body.verdict(401, Some(b"{}")), Verdict::Accepted);
        assert_eq!(only_body.verdict(200, Some(br#"{"code":409}"#)), Verdict::Expired);
        assert_eq!(only_body.status_list(), &[] as &[u16]);
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
