//! Test kit for reauth: the loopback mock OAuth2 issuer that the e2e tests, the demo and the
//! benchmarks run against, and the simulation harness that drives `reauth-core` on a virtual clock
//! with every spec invariant checked after every step.

pub mod fuzz;
pub mod issuer;
pub mod sim;
