//! `reauth`: the command-line face of the reauth library.
//!
//! - `reauth demo` (also what `reauth` with no arguments runs): an in-process mock issuer with
//!   short-lived tokens, many threads of requests through reauth-ureq, a live progress bar and a
//!   summary table; the exit code says whether the demo's invariants held.
//! - `reauth firmware`: the same storm against reauth-nal, in one thread with a poll loop and
//!   compile-time slots, over `std-embedded-nal`, with the same summary table and verdict.
//! - `reauth firmware-async`: the same storm against reauth-nal-async, many embassy tasks sharing
//!   one client, on embassy-net over a TAP device in a network namespace of its own (root).
//! - `reauth soak`: the demo's workload for a minute (by default) with 100 ms tokens and random
//!   transient faults, watching the process's memory; a benchmark binary, run it `--release`.
//! - `reauth fleet`: K processes x T threads sharing one credential through a `FileStore`,
//!   against the mock issuer, next to a naive baseline; `--chaos` kills or stops the lease holder.
//! - `reauth issuer`: the mock issuer on its own, for users' tests: URLs and a login printed.
//! - `reauth login --authorize-url ... --token-url ... --client-id ID --store FILE`: the first
//!   login in a browser (authorization code with PKCE, loopback redirect), or with `--device
//!   --device-url ...` through the device authorization grant (RFC 8628); tokens into the file
//!   `reauth get` uses.
//! - `reauth get URL --token-url ... --store FILE`: one authenticated GET against a real OAuth2
//!   server, tokens kept in a file.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run` function; adding one
//! is a `mod` line and a line in `subcommands!` in this file.

mod demo;
mod fault;
mod firmware;
mod firmware_async;
mod flags;
mod fleet;
mod get;
mod issuer;
mod login;
mod netns;
mod qemu;
mod report;
mod soak;
mod tap;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Declares the subcommands, one line each: `Variant(module::Args) => module::run`, with the
/// variant's doc comment as its help text.
macro_rules! subcommands {
    ($($(#[$meta:meta])* $variant:ident($args:ty) => $run:path),* $(,)?) => {
        /// What to do.
        #[derive(Debug, Subcommand)]
        enum Command {
            $($(#[$meta])* $variant($args),)*
        }

        impl Command {
            fn run(self) -> ExitCode {
                match self {
                    $(Self::$variant(args) => $run(args),)*
                }
            }
        }
    };
}

subcommands! {
    /// Refresh storm demo against an in-process mock issuer (the default command)
    Demo(demo::Args) => demo::run,
    /// The same with reauth-nal in a single-threaded poll loop, as firmware runs it
    Firmware(firmware::Args) => firmware::run,
    /// The same with reauth-nal-async: embassy-net on a TAP device, many tasks, one client
    FirmwareAsync(firmware_async::Args) => firmware_async::run,
    /// One credential shared by many processes: one refresh per expiry fleet-wide, vs naive
    Fleet(fleet::Args) => fleet::run,
    /// One worker process of `reauth fleet` (started by it)
    #[command(hide = true)]
    FleetWorker(fleet::WorkerArgs) => fleet::run_worker,
    /// Authenticated GET against a real OAuth2 server, tokens kept in a file
    Get(get::Args) => get::run,
    /// The mock issuer on its own (127.0.0.1), for your own tests; prints its URLs and a login
    Issuer(issuer::Args) => issuer::run,
    /// First login in a browser (PKCE, loopback redirect) or with --device, tokens into a file store
    Login(login::Args) => login::run,
    /// The demo's workload for a minute with 100 ms tokens and random faults, watching memory
    Soak(soak::Args) => soak::run,
}

/// Keeps token-protected HTTP clients logged in: one refresh per expiry, no lost requests.
#[derive(Debug, Parser)]
#[command(name = "reauth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> ExitCode {
    // No arguments at all: the demo with its defaults, exactly as `reauth demo`.
    let command = Cli::parse()
        .command
        .unwrap_or_else(|| Command::Demo(demo::Args::parse_from(["reauth demo"])));
    command.run()
}
