//! One coordinator shared between interrupt handlers and the main loop, behind a
//! `critical_section::Mutex` (feature `critical-section`).
//!
//! The library picks no critical-section implementation; the firmware links one (for example
//! `cortex-m` with `critical-section-single-core`). Host tests use the crate's `std` feature.

use core::cell::RefCell;

use critical_section::Mutex;

use crate::config::Config;
use crate::coordinator::Coordinator;

/// A [`Coordinator`] that can live in a `static` and be used from any context.
///
/// ```
/// use reauth_core::{Config, Instant, RequestId, SharedCoordinator};
///
/// static AUTH: SharedCoordinator<8> = SharedCoordinator::new(Config::DEFAULT);
///
/// AUTH.with(|c| c.handle_login(Instant::from_millis(0), None));
/// let admitted = AUTH.with(|c| c.handle_request(Instant::from_millis(5), RequestId(1)));
/// assert!(admitted.is_ok());
/// ```
pub struct SharedCoordinator<const N: usize> {
    inner: Mutex<RefCell<Coordinator<N>>>,
}

impl<const N: usize> SharedCoordinator<N> {
    /// A shared coordinator with no credentials.
    #[must_use]
    pub const fn new(config: Config) -> Self {
        Self { inner: Mutex::new(RefCell::new(Coordinator::new(config))) }
    }

    /// Runs `f` on the coordinator inside a critical section.
    ///
    /// # Panics
    /// If `f` calls `with` on the same `SharedCoordinator` again (a nested borrow): keep the
    /// closure to coordinator calls.
    pub fn with<R>(&self, f: impl FnOnce(&mut Coordinator<N>) -> R) -> R {
        critical_section::with(|cs| f(&mut self.inner.borrow_ref_mut(cs)))
    }
}
