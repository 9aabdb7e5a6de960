//! What the lock guards: the coordinator, the tokens and their `Authorization` value, the
//! outcomes posted for parked requests, the store version; and the small types a request carries
//! between its steps.

use core::fmt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::HeaderValue;
use reauth_core::{Coordinator, Generation, RefreshId, Rejection, RequestId, Ticket, TokenSet};
use zeroize::Zeroizing;

use crate::exchange::{ACCESS_CAPACITY, NewTokens, QUEUE_CAPACITY, REFRESH_CAPACITY, RefreshError};
use crate::store::StoredTokens;
use crate::wire::{Masked, Masks};

/// The state behind the lock.
pub(super) struct Shared {
    pub(super) coordinator: Coordinator<QUEUE_CAPACITY>,
    pub(super) tokens: TokenSet<ACCESS_CAPACITY, REFRESH_CAPACITY>,
    /// Outcomes drained for parked requests, waiting for their threads to pick them up. At most
    /// one per parked request, so bounded by the queue capacity.
    pub(super) outcomes: HashMap<RequestId, Wake>,
    /// Why the last refresh attempt failed; cleared by a success or a login.
    pub(super) last_refresh_error: Option<RefreshError>,
    /// The header value of the installed access token, with its generation.
    pub(super) authorization: Option<(Generation, Authorization)>,
    /// The placeholders of the API agent's wire filter.
    pub(super) masks: Arc<Masks>,
    /// The version of the store's record that the installed tokens came from or were saved as
    /// (0: none). A record of another version was written by someone else: it is adopted
    /// instead of refreshing.
    pub(super) version: u64,
}

/// The outcome of a parked request.
pub(super) enum Wake {
    /// Send now with this header value (built from the token of the ticket's generation).
    Send(Ticket, Authorization),
    /// Give up with this reason.
    Reject(Rejection),
}

/// `Authorization: Bearer <token>` for one generation. Built once per installed access token
/// and shared by every request of that generation (a cheap reference-counted clone).
///
/// ureq gets a placeholder of the same length as its header value (see [`wire`](crate::wire)), so that
/// its wire trace never holds the token; the filter under ureq sends the real value. The real
/// value lives only in wiped memory: here and in the filter's table, until the last request of
/// the generation is done.
#[derive(Clone)]
pub(super) struct Authorization(pub(super) Arc<Bearer>);

pub(super) struct Bearer {
    /// The placeholder header, marked sensitive.
    pub(super) header: HeaderValue,
    /// The access token, for requests the application builds around it.
    pub(super) token: Zeroizing<String>,
    /// Keeps the placeholder mapped to `Bearer <token>` while requests may use it.
    pub(super) _mask: Masked,
}

impl Authorization {
    /// The access token, for requests built around the token.
    pub(super) fn token(&self) -> &str {
        &self.0.token
    }
}

/// Where one request stands in [`Client::send`].
pub(super) enum Step {
    Send(Ticket, Authorization),
    Wait,
    Reject(Rejection),
}

/// What a drain of `poll_action` left for the caller to do outside the lock.
#[must_use]
pub(super) struct Drained(pub(super) Option<RefreshId>);

impl Shared {
    /// The step for a granted ticket: its `Authorization` value, built from the installed token,
    /// which is always the one of the ticket's generation (tokens and coordinator change together
    /// under the lock).
    pub(super) fn grant(&self, ticket: Ticket) -> Step {
        match &self.authorization {
            Some((generation, value)) if *generation == ticket.generation => {
                Step::Send(ticket, value.clone())
            }
            // Unreachable while the invariant above holds; refusing is the safe answer.
            _ => Step::Reject(Rejection::NeedsLogin),
        }
    }

    /// Installs new tokens under `generation`.
    pub(super) fn install(&mut self, generation: Generation, tokens: &NewTokens) {
        // `NewTokens` was checked against buffers of the same capacities, so this cannot fail;
        // if it somehow did, an access token of the wrong generation must not be used.
        let mask = self.masks.mask(tokens.access());
        let value = HeaderValue::from_str(&format!("Bearer {}", mask.as_str()));
        match (self.tokens.install(generation, tokens.access(), tokens.refresh()), value) {
            (Ok(()), Ok(mut value)) => {
                value.set_sensitive(true);
                let bearer = Bearer {
                    header: value,
                    token: Zeroizing::new(tokens.access().to_owned()),
                    _mask: mask,
                };
                self.authorization = Some((generation, Authorization(Arc::new(bearer))));
            }
            _ => {
                self.clear();
                let now = self.coordinator.now();
                self.coordinator.handle_logout(now);
            }
        }
    }

    /// Wipes the tokens and drops the header value.
    pub(super) fn clear(&mut self) {
        self.tokens.clear();
        self.authorization = None;
    }
}

/// The record of `tokens` with `refresh` as its refresh token, as version `version`.
pub(super) fn stored_tokens(version: u64, refresh: &str, tokens: &NewTokens) -> StoredTokens {
    StoredTokens {
        version,
        refresh_token: Zeroizing::new(refresh.to_owned()),
        access_token: Some(Zeroizing::new(tokens.access().to_owned())),
        expires_at: tokens.expires_in().and_then(|d| SystemTime::now().checked_add(d)),
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}
