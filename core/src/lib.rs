#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

mod config;
mod coordinator;
pub mod device;
mod error;
pub mod expiry;
mod json;
mod log;
pub mod oauth;
mod queue;
#[cfg(feature = "critical-section")]
mod shared;
mod ticket;
mod time;
mod token;

pub use config::{Backoff, Config, TokenTiming};
pub use coordinator::{
    Access, Action, Admission, Coordinator, FailCause, Outcome, Phase, RefreshFailure, State,
    Verdict,
};
pub use error::{RefreshResultError, Rejected, Rejection};
#[cfg(feature = "critical-section")]
pub use shared::SharedCoordinator;
pub use ticket::{Generation, RefreshId, RequestId, Ticket};
pub use time::{Duration, Instant};
pub use token::{Token, TokenError, TokenSet};
