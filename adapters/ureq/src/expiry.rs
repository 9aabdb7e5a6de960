//! What counts as "the access token expired" for one API: a status list (401 by default), a
//! body-code rule for APIs that answer expiry with a 200 and `{"code":409}`, and a predicate of
//! the application's own. The body is read, into a bounded buffer, only when a rule needs it.

use core::fmt;
use std::sync::Arc;

use reauth_core::Verdict;
use reauth_core::expiry::{BodyCode, EmptyStatusList, ExpiryRule};

/// The response as an expiry rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct ResponseView<'a> {
    /// The response status.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: &'a http::HeaderMap,
    /// The whole body, if a rule asked for it and it fit in
    /// [`Expiry::body_limit`]; `None` otherwise.
    pub body: Option<&'a [u8]>,
}

/// A predicate that says "expired" for a response.
type Predicate = Arc<dyn Fn(&ResponseView<'_>) -> bool + Send + Sync>;

/// How the client recognises an expired access token. Built like reauth-nal's rule, from the
/// core's constants or a status list, then builders:
/// `Expiry::from(ExpiryRule::STATUS_401).body_code("code", &[409])` (the same as
/// `Expiry::default().body_code("code", &[409])`), `Expiry::statuses(&[401, 419])?`, or
/// [`Expiry::body_code_only`] for an API that never signals expiry with a status. An empty
/// status list is an error ([`EmptyStatusList`]), so the 401 rule cannot be dropped by accident.
///
/// A response is "expired" when its status is in the status list, or the body-code rule matches,
/// or the predicate returns true. Only responses to requests that carried the client's token are
/// judged: a 401 from another origin after a redirect goes to the application as it is.
#[derive(Clone)]
pub struct Expiry {
    /// Statuses that always mean expired.
    statuses: Vec<u16>,
    /// A top-level JSON field and the values that mean expired.
    body_code: Option<(String, Vec<i64>)>,
    /// The application's own rule.
    predicate: Option<Predicate>,
    /// Whether the predicate wants the body.
    predicate_reads_body: bool,
    /// The most body bytes read to judge a response; a longer body is judged without its body.
    body_limit: usize,
}

impl Expiry {
    /// Default cap on the body read for a rule: 64 KiB, far more than an error document needs.
    pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

    /// Expired means one of `statuses` (and nothing else, until more rules are added).
    ///
    /// # Errors
    /// [`EmptyStatusList`] for an empty list; an API that only signals expiry in the body uses
    /// [`body_code_only`](Self::body_code_only).
    pub fn statuses(statuses: &[u16]) -> Result<Self, EmptyStatusList> {
        ExpiryRule::statuses(statuses).map(Self::from)
    }

    /// Expired means a JSON body whose top-level `field` is one of `values`, whatever the
    /// status (not even a 401 means expired): for APIs that never signal expiry with a status.
    #[must_use]
    pub fn body_code_only(field: &str, values: &[i64]) -> Self {
        Self { statuses: Vec::new(), ..Self::from(ExpiryRule::STATUS_401) }.body_code(field, values)
    }

    /// Also expired: a JSON body whose top-level `field` is one of `values` (a number), e.g.
    /// `body_code("code", &[409])`. Makes the client read bodies, up to
    /// [`body_limit`](Self::body_limit) bytes.
    #[must_use]
    pub fn body_code(mut self, field: &str, values: &[i64]) -> Self {
        self.body_code = Some((field.to_owned(), values.to_vec()));
        self
    }

    /// Also expired: whatever `predicate` says, looking at the status and headers only.
    #[must_use]
    pub fn predicate(
        mut self,
        predicate: impl Fn(&ResponseView<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(predicate));
        self.predicate_reads_body = false;
        self
    }

    /// Also expired: whatever `predicate` says, with the body in [`ResponseView::body`] (read up
    /// to [`body_limit`](Self::body_limit) bytes).
    #[must_use]
    pub fn predicate_with_body(
        mut self,
        predicate: impl Fn(&ResponseView<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(predicate));
        self.predicate_reads_body = true;
        self
    }

    /// The most body bytes read to judge one response (default
    /// [`DEFAULT_BODY_LIMIT`](Self::DEFAULT_BODY_LIMIT)). The bytes read are handed back to the
    /// application with the rest of the body; a longer body is judged as if it had none.
    #[must_use]
    pub const fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// True if judging a response needs its body.
    pub(crate) const fn needs_body(&self) -> bool {
        self.body_code.is_some() || (self.predicate.is_some() && self.predicate_reads_body)
    }

    /// The cap on the body bytes read for judging.
    pub(crate) const fn limit(&self) -> usize {
        self.body_limit
    }

    /// Judges one response.
    pub(crate) fn verdict(&self, view: &ResponseView<'_>) -> Verdict {
        let code = self.body_code.as_ref().map(|(field, values)| BodyCode { field, values });
        // Every way of building an `Expiry` leaves a status or a body code.
        let rule = match (ExpiryRule::statuses(&self.statuses), code) {
            (Ok(rule), Some(code)) => rule.body_code(code),
            (Ok(rule), None) => rule,
            (Err(EmptyStatusList), Some(code)) => ExpiryRule::body_code_only(code),
            (Err(EmptyStatusList), None) => ExpiryRule::STATUS_401,
        };
        let verdict = rule.verdict(view.status.as_u16(), view.body);
        match &self.predicate {
            _ if verdict == Verdict::Expired => Verdict::Expired,
            Some(predicate) if predicate(view) => Verdict::Expired,
            // Accepted, or Forbidden (a 403: replayed only if it answered an older token).
            _ => verdict,
        }
    }
}

impl Default for Expiry {
    /// 401 and nothing else (RFC 6750 §3.1): [`ExpiryRule::STATUS_401`].
    fn default() -> Self {
        Self::from(ExpiryRule::STATUS_401)
    }
}

impl From<ExpiryRule<'_>> for Expiry {
    /// The core's rule (a constant such as [`ExpiryRule::STATUS_401_403`], or one built with
    /// its builders), the same one reauth-nal takes.
    fn from(rule: ExpiryRule<'_>) -> Self {
        Self {
            statuses: rule.status_list().to_vec(),
            body_code: rule.body_code_rule().map(|c| (c.field.to_owned(), c.values.to_vec())),
            predicate: None,
            predicate_reads_body: false,
            body_limit: Self::DEFAULT_BODY_LIMIT,
        }
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expiry")
            .field("statuses", &self.statuses)
            .field("body_code", &self.body_code)
            .field("predicate", &self.predicate.as_ref().map(|_| "<fn>"))
            .field("predicate_reads_body", &self.predicate_reads_body)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}
