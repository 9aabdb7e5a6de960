//! Test kit for reauth: the loopback mock OAuth2 issuer that the e2e tests, the demo and the
//! benchmarks run against; the simulation harness that drives `reauth-core` on a virtual clock
//! with every spec invariant checked after every step; the bodies of the fuzz targets; the
//! helpers of the adapters' secrets tests; and a real `redis-server` for the Redis store's tests.

pub mod fuzz;
pub mod issuer;
pub mod redis_server;
pub mod secrets;
pub mod sim;
pub mod tls;
