//! The one place the core logs through: `event!` compiles to nothing unless the `log` feature is
//! on, so firmware that does not want logging pays nothing for it. Log lines carry ids,
//! generations, counts and durations, never a token.

/// `event!(debug, "format", args..)`: a log line at the given `log` level, or nothing.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "log")]
        {
            ::log::$level!(target: "reauth", $($arg)+);
        }
    };
}

pub(crate) use event;
