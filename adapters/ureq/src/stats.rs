//! Counters of what the client did, for dashboards, tests and the CLI's summary. Plain relaxed
//! atomics: each counter is exact, a snapshot of several is not a single instant.

use core::sync::atomic::{AtomicU64, Ordering};

use reauth_core::Rejection;

/// A snapshot of a client's counters, from [`Client::stats`](crate::Client::stats). Every count
/// starts at 0 when the client is built and is shared by all its clones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Logical requests started (`send`, `get`, ...).
    pub requests: u64,
    /// Requests that returned a response.
    pub succeeded: u64,
    /// Requests that returned an error.
    pub failed: u64,
    /// HTTP exchanges sent with the token, replays included (redirect hops are not counted).
    pub sent: u64,
    /// Responses judged "token expired".
    pub expired_responses: u64,
    /// 401 responses that carried `WWW-Authenticate: Bearer error="invalid_token"`.
    pub invalid_token_challenges: u64,
    /// Requests replayed at once because their "expired" answer was for an older token than the
    /// current one (no refresh was started for them).
    pub stale_replays: u64,
    /// Times a request had to wait for a refresh.
    pub parked: u64,
    /// Refresh calls started (one per attempt, retries included).
    pub refreshes_started: u64,
    /// Refresh calls that brought new tokens.
    pub refreshes_succeeded: u64,
    /// Refresh attempts that failed (transiently or by refusal), including attempts that did not
    /// call the token endpoint because the shared store's lease could not be had.
    pub refreshes_failed: u64,
    /// Refresh attempts answered from the shared store: another process had refreshed, and its
    /// record was installed without a call of ours.
    pub adopted: u64,
    /// Requests rejected with [`Error::NeedsLogin`](crate::Error::NeedsLogin).
    pub rejected_needs_login: u64,
    /// Requests rejected with [`Error::QueueFull`](crate::Error::QueueFull).
    pub rejected_queue_full: u64,
    /// Requests rejected with [`Error::Timeout`](crate::Error::Timeout).
    pub rejected_timeout: u64,
    /// Requests rejected with [`Error::RefreshUnavailable`](crate::Error::RefreshUnavailable).
    pub rejected_refresh_unavailable: u64,
    /// Requests rejected with [`Error::Unauthorized`](crate::Error::Unauthorized).
    pub rejected_unauthorized: u64,
    /// Requests that failed on the wire ([`Error::Transport`](crate::Error::Transport)).
    pub transport_errors: u64,
    /// Failed saves to the token store (the tokens were kept in memory).
    pub store_errors: u64,
    /// Redirects followed.
    pub redirects_followed: u64,
}

/// One counter of [`Stats`].
#[derive(Clone, Copy)]
pub(crate) enum Stat {
    Requests,
    Succeeded,
    Failed,
    Sent,
    ExpiredResponses,
    InvalidTokenChallenges,
    StaleReplays,
    Parked,
    RefreshesStarted,
    RefreshesSucceeded,
    RefreshesFailed,
    Adopted,
    RejectedNeedsLogin,
    RejectedQueueFull,
    RejectedTimeout,
    RejectedRefreshUnavailable,
    RejectedUnauthorized,
    TransportErrors,
    StoreErrors,
    RedirectsFollowed,
}

/// Number of [`Stat`] variants.
const COUNT: usize = Stat::RedirectsFollowed as usize + 1;

/// The live counters inside a client.
#[derive(Debug, Default)]
pub(crate) struct StatCells {
    cells: [Cell; COUNT],
}

/// One counter on its own cache line: every request bumps several counters from many threads,
/// and sharing a line would make them fight over it.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Cell(AtomicU64);

impl StatCells {
    pub(crate) fn bump(&self, stat: Stat) {
        self.cells[stat as usize].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejection under its reason.
    pub(crate) fn rejected(&self, reason: Rejection) {
        let stat = match reason {
            Rejection::NeedsLogin => Stat::RejectedNeedsLogin,
            Rejection::QueueFull => Stat::RejectedQueueFull,
            Rejection::Timeout => Stat::RejectedTimeout,
            Rejection::RefreshUnavailable => Stat::RejectedRefreshUnavailable,
            _ => Stat::RejectedUnauthorized,
        };
        self.bump(stat);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |stat: Stat| self.cells[stat as usize].0.load(Ordering::Relaxed);
        Stats {
            requests: get(Stat::Requests),
            succeeded: get(Stat::Succeeded),
            failed: get(Stat::Failed),
            sent: get(Stat::Sent),
            expired_responses: get(Stat::ExpiredResponses),
            invalid_token_challenges: get(Stat::InvalidTokenChallenges),
            stale_replays: get(Stat::StaleReplays),
            parked: get(Stat::Parked),
            refreshes_started: get(Stat::RefreshesStarted),
            refreshes_succeeded: get(Stat::RefreshesSucceeded),
            refreshes_failed: get(Stat::RefreshesFailed),
            adopted: get(Stat::Adopted),
            rejected_needs_login: get(Stat::RejectedNeedsLogin),
            rejected_queue_full: get(Stat::RejectedQueueFull),
            rejected_timeout: get(Stat::RejectedTimeout),
            rejected_refresh_unavailable: get(Stat::RejectedRefreshUnavailable),
            rejected_unauthorized: get(Stat::RejectedUnauthorized),
            transport_errors: get(Stat::TransportErrors),
            store_errors: get(Stat::StoreErrors),
            redirects_followed: get(Stat::RedirectsFollowed),
        }
    }
}
