//! The request loop: admission, the exchange, the verdict, replay or wait; waiting on the
//! condition variable with timer ticks; feeding inputs and draining actions under the lock; and
//! starting a drained refresh on its own thread.

use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::{PoisonError, mpsc};
use std::thread;

use http::Response;
use reauth_core::{
    Action, Admission, FailCause, Instant, Outcome, Phase, Rejection, RequestId, State, Verdict,
};
use ureq::Body;

use crate::error::Error;
use crate::lease;
use crate::stats::Stat;

use super::send::{Credential, Source, discard};
use super::state::{Drained, Shared, Step, Wake};
use super::{Client, invalid};

impl Client {
    // ---------------------------------------------------------------------------------------
    // The request loop

    /// Counts the request and its result around [`execute`](Self::execute).
    pub(super) fn run(&self, source: Source<'_>) -> Result<Response<Body>, Error> {
        self.inner.stats.bump(Stat::Requests);
        let result = self.execute(source);
        self.inner.stats.bump(if result.is_ok() { Stat::Succeeded } else { Stat::Failed });
        result
    }

    pub(super) fn execute(&self, source: Source<'_>) -> Result<Response<Body>, Error> {
        let id = RequestId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let admit = |shared: &mut Shared, now| match shared.coordinator.handle_request(now, id) {
            Ok(Admission::Send(ticket)) => shared.grant(ticket),
            Ok(Admission::Parked) => Step::Wait,
            Err(rejected) => Step::Reject(rejected.reason),
        };
        let mut step = self.step(admit);
        let mut adopted = false;
        loop {
            step = match step {
                Step::Send(ticket, authorization) => {
                    self.inner.stats.bump(Stat::Sent);
                    let sent = match source {
                        Source::Fixed(request) => {
                            self.exchange(request, Credential::Bearer(&authorization))
                        }
                        Source::Build(build) => match build(authorization.token()) {
                            Ok(request) => self.exchange(&request, Credential::InRequest),
                            Err(e) => Err(invalid(e)),
                        },
                    };
                    let (response, verdict) = match sent {
                        Ok(answer) => answer,
                        Err(e) => {
                            if matches!(e, Error::Transport(_)) {
                                self.inner.stats.bump(Stat::TransportErrors);
                            }
                            return Err(e);
                        }
                    };
                    if verdict == Verdict::Expired {
                        self.inner.stats.bump(Stat::ExpiredResponses);
                    }
                    let next = self.step(|shared, now| {
                        match shared.coordinator.handle_response(now, ticket, verdict) {
                            Outcome::Done => None,
                            Outcome::Replay(ticket) => {
                                self.inner.stats.bump(Stat::StaleReplays);
                                Some(shared.grant(ticket))
                            }
                            Outcome::Parked => Some(Step::Wait),
                            Outcome::Rejected(rejected) => Some(Step::Reject(rejected.reason)),
                        }
                    });
                    match next {
                        None => return Ok(response),
                        Some(next) => {
                            discard(response);
                            next
                        }
                    }
                }
                Step::Wait => {
                    self.inner.stats.bump(Stat::Parked);
                    self.wait(id)
                }
                Step::Reject(Rejection::NeedsLogin) if !adopted && self.adopt_after_logout() => {
                    // Another process has logged in or refreshed since ours lost its
                    // credentials: go again with the adopted ones.
                    adopted = true;
                    self.step(admit)
                }
                Step::Reject(reason) => {
                    self.inner.stats.rejected(reason);
                    let last = self.lock().last_refresh_error.clone();
                    return Err(Error::from_rejection(reason, last));
                }
            };
        }
    }

    /// Without credentials: installs a record another process wrote since ours were lost
    /// (refused, unanswered, logged out), if the store holds one with usable tokens. Returns
    /// whether it did. Only a request that would be refused reads the store.
    pub(super) fn adopt_after_logout(&self) -> bool {
        let held = {
            let shared = self.lock();
            // This process's own logout stands until it logs in again.
            if matches!(shared.coordinator.state(), State::Failed { cause: FailCause::LoggedOut }) {
                return false;
            }
            shared.version
        };
        let record = match self.inner.store.load() {
            Ok(Some(record)) if record.version != held => record,
            _ => return false,
        };
        let Some(tokens) = lease::adoptable(&record) else { return false };
        let mut shared = self.lock();
        let (drained, adopted) = self.input(&mut shared, |shared, now| {
            if !shared.coordinator.needs_login() || shared.version != held {
                // Someone else in this process got there first.
                return !shared.coordinator.needs_login();
            }
            let lifetime = tokens.expires_in().map(reauth_core::Duration::from);
            let generation = shared.coordinator.handle_adopt(now, lifetime);
            shared.install(generation, &tokens);
            shared.version = record.version;
            shared.last_refresh_error = None;
            true
        });
        drop(shared);
        self.finish(drained);
        if adopted {
            self.inner.stats.bump(Stat::Adopted);
        }
        adopted
    }

    /// Waits until request `id` has an outcome, feeding timer ticks meanwhile.
    pub(super) fn wait(&self, id: RequestId) -> Step {
        let config = *self.lock().coordinator.config();
        // The coordinator answers every parked request by its wait deadline; this bound only
        // guards against a bug there turning into a hang.
        let give_up_at = self.now().saturating_add(
            config
                .wait_timeout
                .saturating_add(config.refresh_timeout)
                .saturating_add(reauth_core::Duration::from_secs(5)),
        );
        let mut shared = self.lock();
        loop {
            if let Some(wake) = shared.outcomes.remove(&id) {
                return match wake {
                    Wake::Send(ticket, authorization) => Step::Send(ticket, authorization),
                    Wake::Reject(reason) => Step::Reject(reason),
                };
            }
            let now = self.now();
            if now >= give_up_at {
                let _ = shared.coordinator.handle_cancel(now, id);
                return Step::Reject(Rejection::Timeout);
            }
            let (drained, ()) =
                self.input(&mut shared, |shared, now| shared.coordinator.handle_timeout(now));
            if drained.0.is_some() {
                drop(shared);
                self.finish(drained);
                shared = self.lock();
                continue;
            }
            if shared.outcomes.contains_key(&id) {
                continue;
            }
            let next =
                shared.coordinator.poll_timeout().map_or(give_up_at, |at| at.min(give_up_at));
            let timeout = self.until(next);
            shared = self
                .inner
                .wake
                .wait_timeout(shared, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Locks, feeds one input, drains, unlocks, performs a drained refresh.
    pub(super) fn step<R>(&self, f: impl FnOnce(&mut Shared, Instant) -> R) -> R {
        let mut shared = self.lock();
        let (drained, result) = self.input(&mut shared, f);
        drop(shared);
        self.finish(drained);
        result
    }

    /// Feeds one input under the lock and drains every action: outcomes are posted, a refresh is
    /// handed back to be performed once the lock is released. Wakes the waiting threads when an
    /// outcome was posted or the next timer moved earlier than they planned for.
    pub(super) fn input<R>(
        &self,
        shared: &mut Shared,
        f: impl FnOnce(&mut Shared, Instant) -> R,
    ) -> (Drained, R) {
        let before = shared.coordinator.poll_timeout();
        let result = f(shared, self.now());
        let mut refresh = None;
        let mut posted = false;
        while let Some(action) = shared.coordinator.poll_action() {
            match action {
                Action::Refresh(id) => {
                    self.inner.stats.bump(Stat::RefreshesStarted);
                    // The core hands out at most one attempt per drain (one in flight).
                    refresh = Some(id);
                }
                Action::Send(ticket) => {
                    let wake = match shared.grant(ticket) {
                        Step::Send(ticket, authorization) => Wake::Send(ticket, authorization),
                        _ => Wake::Reject(Rejection::NeedsLogin),
                    };
                    shared.outcomes.insert(ticket.id, wake);
                    posted = true;
                }
                Action::Reject(rejected) => {
                    shared.outcomes.insert(rejected.id, Wake::Reject(rejected.reason));
                    posted = true;
                }
            }
        }
        let after = shared.coordinator.poll_timeout();
        let earlier = match (after, before) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if posted || earlier {
            self.inner.wake.notify_all();
        }
        (Drained(refresh), result)
    }

    /// Carries out what a drain left to do outside the lock: a refresh, on a thread of its
    /// own. This thread waits for it, but no longer than the attempt's deadline or its own wait
    /// timeout, whichever is sooner: a custom exchange that ignores the refresh timeout (or a
    /// store that hangs) then holds only the refresh thread, never a request past its deadline.
    /// Waiting at all keeps the common case as it was: the thread that started a refresh
    /// returns after it, so a program that exits after one request does not cut a refresh
    /// short between the server's rotation and the store's save.
    pub(super) fn finish(&self, drained: Drained) {
        let Some(id) = drained.0 else { return };
        let bound = {
            let shared = self.lock();
            let wait = Duration::from_millis(shared.coordinator.config().wait_timeout.millis());
            match *shared.coordinator.state() {
                State::Refreshing { phase: Phase::InFlight { timeout_at, .. }, .. } => {
                    self.until(timeout_at).min(wait)
                }
                _ => wait,
            }
        };
        let client = self.clone();
        let (done, finished) = mpsc::channel();
        let spawned = thread::Builder::new().name("reauth-refresh".into()).spawn(move || {
            client.refresh(id);
            let _ = done.send(());
        });
        match spawned {
            Ok(_) => {
                let _ = finished.recv_timeout(bound);
            }
            // No thread to be had: refresh here, as before.
            Err(_) => self.refresh(id),
        }
    }
}
