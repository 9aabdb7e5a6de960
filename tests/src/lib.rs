//! Test kit for reauth: the loopback mock OAuth2 issuer that the e2e tests, the demo and the
//! benchmarks run against; the simulation harness that drives `reauth-core` on a virtual clock
//! with every spec invariant checked after every step; the bodies of the fuzz targets; and the
//! helpers of the adapters' secrets tests.

pub mod fuzz;
pub mod issuer;
pub mod secrets;
pub mod sim;
