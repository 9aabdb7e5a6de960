//! The cross-process side of one refresh attempt: take the store's lease (or wait for the
//! holder's record), reload under it, and decide between adopting a record someone else wrote
//! and refreshing ourselves. The client carries out the decision; see
//! [the store module](crate::TokenStore) for the protocol.

use core::time::Duration;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::exchange::{NewTokens, RefreshError};
use crate::store::{Lease, StoreError, StoredTokens, TokenStore};

/// How much longer a lease lives than the refresh call it covers: the call's own timeout ends
/// it first, with room for the store write that follows and for clock drift between hosts.
/// Kept short, since a holder that dies keeps everyone else waiting this long past the call.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// What to do about one refresh attempt, as the store sees it.
pub(crate) enum Plan {
    /// Another process refreshed: install its record instead of calling the token endpoint.
    Adopt(StoredTokens),
    /// Refresh under this lease, with the refresh token of `record` if there is one (it is
    /// newer than ours and carries no usable access token), else with our own; the new record
    /// is written over version `base` (0: the store holds none).
    Refresh { lease: Lease, record: Option<StoredTokens>, base: u64 },
    /// Do not refresh now.
    Fail(RefreshError),
}

/// Takes the lease for an attempt, waiting for another holder until `give_up_at`, and reloads
/// under it. `held` is the version of the record our tokens belong to; a record of any other
/// version was written by someone else. With `fallback`, a store that cannot be reached does
/// not stop the refresh (see `ClientBuilder::lease_fallback`).
pub(crate) fn plan(
    store: &dyn TokenStore,
    held: u64,
    ttl: Duration,
    give_up_at: Instant,
    fallback: bool,
) -> Plan {
    let lease = Lease::new(ttl);
    loop {
        match store.try_lease(&lease) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) if fallback => return Plan::Refresh { lease, record: None, base: held },
            Err(e) => return Plan::Fail(store_failure(e)),
        }
        // Someone else is refreshing: their record, as soon as it is there, is ours too.
        // Wait for a record past the one just read (an older one than the holder's next, e.g.
        // one whose access token ran out, would end every wait at once).
        let seen = match store.load() {
            Ok(Some(record)) if record.version != held && usable(&record).is_some() => {
                return Plan::Adopt(record);
            }
            Ok(record) => record.map_or(0, |r| r.version),
            Err(e) => return Plan::Fail(store_failure(e)),
        };
        if Instant::now() >= give_up_at {
            return Plan::Fail(RefreshError::LeaseBusy);
        }
        if let Err(e) = store.wait_for_change(seen, give_up_at) {
            return Plan::Fail(store_failure(e));
        }
    }
    // Under the lease: the record may have moved while we waited for it.
    match store.load() {
        Ok(Some(record)) if record.version != held => {
            if usable(&record).is_some() {
                release(store, &lease);
                Plan::Adopt(record)
            } else {
                let base = record.version;
                Plan::Refresh { lease, record: Some(record), base }
            }
        }
        Ok(record) => Plan::Refresh { lease, record: None, base: record.map_or(0, |r| r.version) },
        Err(_) if fallback => Plan::Refresh { lease, record: None, base: held },
        Err(e) => {
            release(store, &lease);
            Plan::Fail(store_failure(e))
        }
    }
}

/// After a refusal of the token we presented: a record someone else wrote meanwhile (our
/// refusal was a reuse of a token they had rotated) is adopted; otherwise, if the refusal was
/// about the token (`token_dead`: `invalid_grant`, or a refusal without a code), the dead record
/// is removed, unless a newer one replaced it, so that a restarted program knows it must log
/// in. A refusal of the client (`invalid_client` and the like) leaves the record: the token may
/// be fine once the client's settings are.
pub(crate) fn after_refusal(
    store: &dyn TokenStore,
    held: u64,
    token_dead: bool,
) -> Option<StoredTokens> {
    match store.load() {
        Ok(Some(record)) if record.version != held && usable(&record).is_some() => Some(record),
        Ok(Some(record)) if record.version == held && token_dead => {
            let _ = store.clear(Some(held));
            None
        }
        _ => None,
    }
}

/// The tokens of a record another process wrote, checked against the client's buffers, if its
/// access token can still be used (see [`usable`]).
pub(crate) fn adoptable(record: &StoredTokens) -> Option<NewTokens> {
    let (access, lifetime) = usable(record)?;
    NewTokens::new(access, Some(&record.refresh_token), lifetime).ok()
}

/// Gives the lease back; a failure only means the lease lapses at its deadline.
pub(crate) fn release(store: &dyn TokenStore, lease: &Lease) {
    let _ = store.release(lease);
}

/// The least lifetime a record's access token must have left to be adopted: enough to be sent
/// once. It is not a fraction of a second's worth of lifetime: another process's record is
/// read moments after it was written, so a 1 s token has a little less than 1 s left, and a
/// newer record refused here is refreshed again at once (one more refresh per expiry).
const ADOPT_MIN_LEFT: Duration = Duration::from_millis(100);

/// The access token of `record` and its remaining lifetime, if it can still be used (an unknown
/// expiry counts as usable; one less than [`ADOPT_MIN_LEFT`] away does not).
pub(crate) fn usable(record: &StoredTokens) -> Option<(&str, Option<Duration>)> {
    let access = record.access_token.as_deref()?;
    match record.expires_at {
        None => Some((access, None)),
        Some(at) => {
            let left = at.duration_since(SystemTime::now()).ok()?;
            (left >= ADOPT_MIN_LEFT).then_some((access, Some(left)))
        }
    }
}

fn store_failure(e: StoreError) -> RefreshError {
    RefreshError::Store(Arc::new(e))
}
