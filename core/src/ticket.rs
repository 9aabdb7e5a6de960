//! The names that travel between the caller and the coordinator: request ids, token generations,
//! refresh ids, and the ticket that rides along with every request sent.

use core::fmt;

/// The caller's name for one logical request.
///
/// The caller picks it; it MUST be unique among the requests the caller has open (a counter is
/// enough). The coordinator refuses to park the same id twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u32);

/// Which access token a request was sent with. Bumped each time a new access token is installed
/// (login or refresh), so a 401 for an older generation is known to be stale.
///
/// Generations only increase; [`Generation::NONE`] means "no access token was ever installed".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u32);

/// Names one refresh attempt, so that a late or superseded result can be told from the current
/// one. Handed out by [`Action::Refresh`](crate::Action::Refresh); increases with every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefreshId(pub u32);

/// What travels with a request from the moment it is granted until its response is reported.
///
/// The caller keeps it beside the request and hands it back to
/// [`Coordinator::handle_response`](crate::Coordinator::handle_response). It lets the coordinator
/// tell a stale 401 (older generation) from a fresh one and stop replay loops without storing
/// anything per request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The request this ticket belongs to.
    pub id: RequestId,
    /// The generation of the access token the request MUST be sent with: always the current one
    /// when the ticket is handed out.
    pub generation: Generation,
    /// How many times this request was already replayed because the server refused the token
    /// that was current when the request was sent (replays after a stale refusal are free).
    pub replays: u8,
}

impl Generation {
    /// No access token installed yet.
    pub const NONE: Self = Self(0);

    /// The next generation; saturates rather than wrapping (4 billion refreshes are far away).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request #{}", self.0)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}", self.0)
    }
}

impl fmt::Display for RefreshId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refresh #{}", self.0)
    }
}
