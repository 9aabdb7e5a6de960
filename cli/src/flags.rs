//! The flags `demo` and `firmware` share: how long to run, and the mock issuer's token lifetime,
//! latency and fault. Each command flattens [`RunFlags`] into its own `Args`, between its own
//! flags, so that its help lists them in the same place as before.

use clap::Args;

use crate::fault::FaultMode;

/// Options shared by `reauth demo` and `reauth firmware`.
#[derive(Debug, Args)]
pub(crate) struct RunFlags {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) duration: f64,
    /// Lifetime of each access token the issuer hands out, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..))]
    pub(crate) token_lifetime: u64,
    /// Upper bound of the issuer's random latency per answer, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency: u64,
    /// Fault the token endpoint serves, one token lifetime after the previous one was served.
    #[arg(long, value_enum, default_value_t = FaultMode::None)]
    pub(crate) fault: FaultMode,
}
