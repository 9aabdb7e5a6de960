//! Time for the client: what time it is, and a way to sleep until a deadline. The coordinator's
//! waits, backoffs and every exchange's deadlines run on it.

use core::future::Future;

use reauth_core::Instant;

/// A monotonic clock with an async sleep, as the executor provides it.
///
/// With the `embassy-time` feature, [`EmbassyClock`] is one. On the host, a test wraps its
/// runtime's timer (tokio's `sleep_until`, for example).
pub trait Clock {
    /// The current instant. It MUST never go backwards; its origin does not matter.
    fn now(&self) -> Instant;

    /// Completes at `at` (at once if `at` has passed). Dropping the future MUST be harmless:
    /// the client drops it whenever what it waited for came first.
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()>;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        C::now(self)
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        C::sleep_until(self, at)
    }
}

/// [`Clock`] on embassy-time's driver: milliseconds since boot (feature `embassy-time`).
#[cfg(feature = "embassy-time")]
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        embassy_time::Timer::at(embassy_time::Instant::from_millis(at.millis()))
    }
}
