//! The refresh: under the store's lease, adopting a record another process wrote or calling the
//! exchange, saving the rotated refresh token (outside the lock), reporting the result; and
//! the store's other uses (a login's save, a failure's report, resuming at start).

use core::time::Duration;
use std::sync::{MutexGuard, PoisonError};
use std::time::SystemTime;

use reauth_core::{Phase, RefreshId, RefreshResultError, State};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::exchange::{NewTokens, RefreshError};
use crate::lease;
use crate::stats::Stat;
use crate::store::{StoreError, StoredTokens};

use super::Client;
use super::state::stored_tokens;

impl Client {
    // ---------------------------------------------------------------------------------------
    // The refresh

    /// Performs refresh attempt `id` and reports its result: under the store's lease, adopting
    /// a record another process wrote, or calling the token endpoint and writing the new record
    /// with compare-and-set (see [the store module](crate::TokenStore)).
    pub(super) fn refresh(&self, id: RefreshId) {
        let gate = self.inner.exchange_gate.lock().unwrap_or_else(PoisonError::into_inner);
        let (held, refresh_timeout, timeout_at) = {
            let shared = self.lock();
            // The attempt may have timed out or been superseded while the gate was closed: the
            // coordinator has then already moved on without it.
            let State::Refreshing {
                phase: Phase::InFlight { id: current, timeout_at, .. }, ..
            } = *shared.coordinator.state()
            else {
                return;
            };
            if current != id {
                return;
            }
            let timeout = shared.coordinator.config().refresh_timeout.millis();
            (shared.version, Duration::from_millis(timeout), timeout_at)
        };
        let store = &*self.inner.store;
        // Waiting for another process's lease sends nothing: give up on it a little before the
        // coordinator's timeout, which would count the attempt as an unanswered presentation.
        let give_up_at =
            std::time::Instant::now() + self.until(timeout_at).saturating_sub(LEASE_WAIT_MARGIN);
        let ttl = refresh_timeout + lease::LEASE_MARGIN;
        let plan = lease::plan(store, held, ttl, give_up_at, self.inner.lease_fallback);
        let (lease, record, base) = match plan {
            lease::Plan::Adopt(record) => return self.adopt(id, &record, gate),
            lease::Plan::Fail(error) => return self.report_refresh(id, Err(error), held, gate),
            lease::Plan::Refresh { lease, record, base } => (lease, record, base),
        };
        let token = match &record {
            Some(record) => Some(Zeroizing::new(record.refresh_token.to_string())),
            None => self.lock().tokens.refresh().map(|t| Zeroizing::new(t.to_owned())),
        };
        // The call must end before the lease does; a holder stopped for a while after it took
        // the lease does not start it.
        let result = match &token {
            _ if lease.remaining() < refresh_timeout => Err(RefreshError::LeaseBusy),
            Some(token) => self.inner.exchange.refresh(token),
            None => Err(RefreshError::NoRefreshToken),
        };
        // A server that does not rotate keeps the presented token valid: when that was the
        // record's rather than ours, it is the one to keep.
        let result = match (result, &record, &token) {
            (Ok(tokens), Some(_), Some(token)) if !tokens.rotates_refresh_token() => {
                NewTokens::new(tokens.access(), Some(token), tokens.expires_in())
                    .map_err(|e| RefreshError::Other(e.to_string()))
            }
            (result, ..) => result,
        };
        let result = match result {
            Err(RefreshError::Refused { status, code, description }) => {
                let token_dead = code.is_none_or(|c| !c.is_configuration_error());
                match lease::after_refusal(store, base, token_dead) {
                    Some(newer) => {
                        lease::release(store, &lease);
                        return self.adopt(id, &newer, gate);
                    }
                    None => Err(RefreshError::Refused { status, code, description }),
                }
            }
            other => other,
        };
        let version = match &result {
            Ok(tokens) => {
                self.inner.stats.bump(Stat::RefreshesSucceeded);
                self.save_refreshed(id, base, tokens).unwrap_or(base)
            }
            Err(_) => base,
        };
        lease::release(store, &lease);
        self.report_refresh(id, result, version, gate);
    }

    /// Installs a record another process wrote, as the result of attempt `id`.
    pub(super) fn adopt(&self, id: RefreshId, record: &StoredTokens, gate: MutexGuard<'_, ()>) {
        self.inner.stats.bump(Stat::Adopted);
        let tokens = lease::adoptable(record)
            .ok_or_else(|| RefreshError::Other("the shared record holds unusable tokens".into()));
        self.report_refresh(id, tokens, record.version, gate);
    }

    /// Saves what refresh `id` brought as record `base + 1` and returns that version, or `None`
    /// if it was not saved: a result for credentials replaced since (login, logout) is dropped
    /// unsaved, and a failed save is counted and reported.
    ///
    /// The save is tried once: parked requests wait for it (persist, then use), so a store that
    /// is away must not hold them. Until the record is written, the only copy of the rotated
    /// refresh token is in this process, and another process that refreshes from the old record
    /// presents a consumed token; `RedisStore` retries a dropped connection for up to its
    /// timeout (2 s) inside the one call.
    pub(super) fn save_refreshed(
        &self,
        id: RefreshId,
        base: u64,
        tokens: &NewTokens,
    ) -> Option<u64> {
        let stored = {
            let shared = self.lock();
            if !shared.coordinator.is_live_refresh(id) {
                return None;
            }
            let refresh = tokens.refresh().or_else(|| shared.tokens.refresh())?;
            stored_tokens(base + 1, refresh, tokens)
        };
        // Outside the client's lock: requests with a valid token never wait for a disk.
        let saved = self.report_store(self.inner.store.save(&stored));
        saved.is_ok().then_some(base + 1)
    }

    /// Reports the result of attempt `id`; the tokens it installs belong to record `version`.
    pub(super) fn report_refresh(
        &self,
        id: RefreshId,
        result: Result<NewTokens, RefreshError>,
        version: u64,
        gate: MutexGuard<'_, ()>,
    ) {
        let mut shared = self.lock();
        let (drained, ()) = match result {
            Ok(tokens) => self.input(&mut shared, |shared, now| {
                let lifetime = tokens.expires_in().map(reauth_core::Duration::from);
                if let Ok(generation) = shared.coordinator.handle_refresh_success(now, id, lifetime)
                {
                    shared.install(generation, &tokens);
                    shared.last_refresh_error = None;
                    shared.version = version;
                }
            }),
            Err(error) => {
                self.inner.stats.bump(Stat::RefreshesFailed);
                let failure = error.failure();
                self.input(&mut shared, |shared, now| {
                    // Kept even for an attempt the coordinator already timed out (`NotCurrent`):
                    // it is still the best answer to "why did the refresh fail"; only a result
                    // for replaced credentials says nothing about the current ones.
                    let result = shared.coordinator.handle_refresh_failure(now, id, failure);
                    if result != Err(RefreshResultError::Superseded) {
                        shared.last_refresh_error = Some(error);
                    }
                })
            }
        };
        drop(shared);
        // A refresh cannot drain another refresh (one in flight at a time), but if a timer
        // started the next attempt meanwhile this thread carries it out too.
        if let Some(next) = drained.0 {
            drop(gate);
            self.refresh(next);
        }
    }

    /// Writes the tokens of a login over whatever record the store holds. Returns the version
    /// written.
    pub(super) fn save_over(&self, tokens: &NewTokens) -> Result<u64, StoreError> {
        let Some(refresh) = tokens.refresh() else {
            return Err(StoreError::Other("a login without a refresh token".into()));
        };
        self.inner.store.save_over(stored_tokens(0, refresh, tokens))
    }

    /// Counts and reports a store failure.
    pub(super) fn report_store(&self, result: Result<(), StoreError>) -> Result<(), Error> {
        result.map_err(|e| {
            self.inner.stats.bump(Stat::StoreErrors);
            if let Some(callback) = &self.inner.on_store_error {
                callback(&e);
            }
            Error::Store(e)
        })
    }

    /// Installs what the store held at start: a still-valid access token resumes as a login,
    /// a refresh token alone as a restore (the first request refreshes).
    pub(super) fn resume(&self, saved: &StoredTokens) -> Result<(), Error> {
        let remaining = saved
            .expires_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .filter(|left| !left.is_zero());
        let mut shared = self.lock();
        let (drained, result) = self.input(&mut shared, |shared, now| {
            match (saved.access_token.as_deref(), remaining) {
                (Some(access), Some(left)) => {
                    let tokens = NewTokens::new(access, Some(&saved.refresh_token), Some(left))?;
                    let generation = shared
                        .coordinator
                        .handle_login(now, Some(reauth_core::Duration::from(left)));
                    shared.install(generation, &tokens);
                }
                _ => {
                    shared.tokens.restore(&saved.refresh_token)?;
                    shared.authorization = None;
                    shared.coordinator.handle_restore(now);
                }
            }
            shared.version = saved.version;
            Ok::<(), Error>(())
        });
        drop(shared);
        self.finish(drained);
        result
    }
}

/// How long before the coordinator's refresh timeout a wait for another process's lease ends.
const LEASE_WAIT_MARGIN: Duration = Duration::from_millis(100);
