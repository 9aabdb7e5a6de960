//! Time as the caller sees it: monotonic milliseconds from a clock the caller owns.
//!
//! The core never reads a clock. Every input carries `now`, an [`Instant`] in milliseconds since
//! an epoch of the caller's choosing (boot, process start, ...). All arithmetic saturates, so no
//! value, however extreme, can overflow or panic; the coordinator clamps an `Instant` that goes
//! backwards to the latest one it has seen.

use core::fmt;
use core::ops::{Add, Sub};

/// A point in the caller's monotonic time, in milliseconds since the caller's epoch.
///
/// Comparisons are plain integer comparisons. Adding a [`Duration`] saturates at
/// [`Instant::MAX`], which therefore also means "never".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Instant {
    /// The caller's epoch.
    pub const ZERO: Self = Self(0);
    /// The last representable instant; deadlines that saturate end here.
    pub const MAX: Self = Self(u64::MAX);

    /// An instant `millis` milliseconds after the caller's epoch.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the caller's epoch.
    #[must_use]
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }

    /// `self + span`, saturating at [`Instant::MAX`].
    #[must_use]
    pub const fn saturating_add(self, span: Duration) -> Self {
        Self(self.0.saturating_add(span.0))
    }

    /// `self - span`, saturating at [`Instant::ZERO`].
    #[must_use]
    pub const fn saturating_sub(self, span: Duration) -> Self {
        Self(self.0.saturating_sub(span.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(0);
    /// The longest representable span.
    pub const MAX: Self = Self(u64::MAX);

    /// A span of `millis` milliseconds.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// A span of `secs` seconds, saturating at [`Duration::MAX`].
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// The span in milliseconds.
    #[must_use]
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// `self + other`, saturating.
    #[must_use]
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// `self - other`, saturating at zero.
    #[must_use]
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self * factor`, saturating.
    #[must_use]
    pub const fn saturating_mul(self, factor: u64) -> Self {
        Self(self.0.saturating_mul(factor))
    }

    /// `self / divisor`, rounding down; dividing by zero gives zero rather than a panic.
    #[must_use]
    pub const fn div(self, divisor: u64) -> Self {
        match self.0.checked_div(divisor) {
            Some(q) => Self(q),
            None => Self(0),
        }
    }

    /// The smaller of two spans.
    #[must_use]
    pub const fn min(self, other: Self) -> Self {
        if self.0 <= other.0 { self } else { other }
    }
}

impl From<core::time::Duration> for Duration {
    /// Whole milliseconds, rounding down; spans beyond `u64::MAX` ms (585 million years)
    /// saturate.
    fn from(span: core::time::Duration) -> Self {
        let millis = span.as_millis();
        Self(if millis > u128::from(u64::MAX) { u64::MAX } else { millis as u64 })
    }
}

impl From<Duration> for core::time::Duration {
    fn from(span: Duration) -> Self {
        Self::from_millis(span.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Self;
    /// Saturating: `Instant::MAX + anything == Instant::MAX`.
    fn add(self, span: Duration) -> Self {
        self.saturating_add(span)
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;
    /// Saturating at [`Instant::ZERO`].
    fn sub(self, span: Duration) -> Self {
        self.saturating_sub(span)
    }
}

impl Sub for Instant {
    type Output = Duration;
    /// Saturating: an earlier `self` gives [`Duration::ZERO`].
    fn sub(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl Add for Duration {
    type Output = Self;
    /// Saturating.
    fn add(self, other: Self) -> Self {
        self.saturating_add(other)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({} ms)", self.0)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_core_durations() {
        let span: Duration = core::time::Duration::from_micros(2_500_999).into();
        assert_eq!(span, Duration::from_millis(2_500));
        assert_eq!(core::time::Duration::from(span), core::time::Duration::from_millis(2_500));
        assert_eq!(Duration::from(core::time::Duration::MAX), Duration::MAX);
    }

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        assert_eq!(Instant::MAX + Duration::from_millis(1), Instant::MAX);
        assert_eq!(Instant::ZERO - Duration::from_millis(1), Instant::ZERO);
        assert_eq!(Instant::from_millis(5) - Instant::from_millis(9), Duration::ZERO);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(Duration::MAX.saturating_mul(3), Duration::MAX);
        assert_eq!(Duration::MAX + Duration::from_millis(1), Duration::MAX);
    }

    #[test]
    fn division_by_zero_is_zero() {
        assert_eq!(Duration::from_millis(10).div(0), Duration::ZERO);
        assert_eq!(Duration::from_millis(10).div(3), Duration::from_millis(3));
    }

    #[test]
    fn spans_between_instants() {
        let a = Instant::from_millis(1_000);
        let b = a + Duration::from_secs(2);
        assert_eq!(b - a, Duration::from_millis(2_000));
        assert_eq!(b.millis(), 3_000);
        assert!(a < b);
    }
}
