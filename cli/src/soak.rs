//! `reauth soak`: the demo's workload for a long time (60 s by default) with 100 ms tokens and
//! random transient faults on the token endpoint (503, 429, hang, reset, close, from a seeded
//! generator), watching the process's memory. It is a benchmark, not a test: run it with
//! `cargo run --release -p reauth-cli -- soak`.
//!
//! It prints requests, failures by reason, refresh calls, reuse attempts, the peak resident set
//! (`VmHWM`) at the start and at the end, and the current one (`VmRSS`) every few seconds, so
//! that a leak shows as a climbing column. The exit code is non-zero if a request was lost (no
//! outcome, or two) or a refresh token was reused. Failures are reported, not judged: a fault
//! that outlasts the retry budget may legitimately fail a request.

use core::time::Duration;
use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::demo::{REFRESH_TIMEOUT, Run, Workload};
use crate::fault::FaultSchedule;
use crate::report::{Table, Verdict};

/// Options of `reauth soak`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Threads sending requests through the one shared client.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    threads: u16,
    /// Lifetime of each access token, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(20..))]
    token_lifetime: u64,
    /// Upper bound of the issuer's random latency per answer, in milliseconds.
    #[arg(long, default_value_t = 5)]
    latency: u64,
    /// Shortest gap between one fault being served and the next one, in milliseconds. The
    /// default outlasts a hang's 0.8 s timeout plus backoff and a 429's 1 s `Retry-After`, so
    /// that one refresh episode meets one fault at most and never runs out of attempts.
    #[arg(long, default_value_t = 1500)]
    min_fault_gap: u64,
    /// Longest gap between one fault being served and the next one, in milliseconds.
    #[arg(long, default_value_t = 4000)]
    max_fault_gap: u64,
    /// Seconds between two memory samples.
    #[arg(long, default_value_t = 5.0)]
    sample_every: f64,
    /// Seed of the fault schedule, the issuer's latency jitter and the client's backoff.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Runs the soak and prints its report.
pub(crate) fn run(args: Args) -> ExitCode {
    let at_start = Memory::read();
    let workload = Workload {
        threads: args.threads,
        duration: Duration::from_secs_f64(args.duration.clamp(0.1, 86_400.0)),
        token_lifetime: Duration::from_millis(args.token_lifetime),
        latency: Duration::from_millis(args.latency),
        // Tokens this short expire by themselves all the time; no forced storms needed.
        storm_every: None,
        seed: args.seed,
    };
    let gap = (
        Duration::from_millis(args.min_fault_gap),
        Duration::from_millis(args.max_fault_gap.max(args.min_fault_gap)),
    );
    let mut faults = FaultSchedule::random(args.seed, gap, REFRESH_TIMEOUT);
    let started = Instant::now();
    let sample_every = Duration::from_secs_f64(args.sample_every.clamp(0.1, 3600.0));
    let mut next_sample = started;
    let mut samples = Vec::new();
    let result = workload.run(|issuer| {
        faults.tick(issuer);
        let memory = Memory::read();
        if Instant::now() >= next_sample {
            samples.push((started.elapsed(), memory, issuer.counters().api_ok));
            next_sample += sample_every;
        }
        format!("  faults {:>3}  rss {}", faults.total(), kib(memory.rss_kib))
    });
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            eprintln!("reauth soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    samples.push((started.elapsed(), Memory::read(), run.issuer.api_ok));
    let at_end = Memory::read();
    print_samples(&samples);
    print_and_judge(&workload, &run, &faults, at_start, at_end)
}

/// The process's resident set, from `/proc/self/status` (Linux); `None` elsewhere.
#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    /// `VmRSS`: resident now, in KiB.
    rss_kib: Option<u64>,
    /// `VmHWM`: the peak resident set so far, in KiB.
    hwm_kib: Option<u64>,
}

impl Memory {
    fn read() -> Self {
        let Ok(status) = fs::read_to_string("/proc/self/status") else {
            return Self::default();
        };
        let field = |name: &str| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix(name)?.strip_prefix(':')?;
                value.trim().trim_end_matches("kB").trim().parse().ok()
            })
        };
        Self { rss_kib: field("VmRSS"), hwm_kib: field("VmHWM") }
    }
}

fn kib(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Prints the memory samples: time, requests answered so far, current and peak RSS.
fn print_samples(samples: &[(Duration, Memory, u64)]) {
    println!();
    println!("  {:>8} {:>12} {:>12} {:>12}", "time", "answered", "VmRSS", "VmHWM");
    for (at, memory, answered) in samples {
        println!(
            "  {:>7.1}s {answered:>12} {:>12} {:>12}",
            at.as_secs_f64(),
            kib(memory.rss_kib),
            kib(memory.hwm_kib),
        );
    }
}

fn print_and_judge(
    workload: &Workload,
    run: &Run,
    faults: &FaultSchedule,
    at_start: Memory,
    at_end: Memory,
) -> ExitCode {
    let (stats, issuer, log) = (&run.stats, &run.issuer, &run.log);
    let secs = run.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut table = Table::default();
    table.row("threads", workload.threads, "");
    table.row("duration", format!("{secs:.1} s"), "");
    table.row("token lifetime", format!("{} ms", workload.token_lifetime.as_millis()), "issuer");
    table.row("faults injected", faults.total(), "soak");
    table.row("requests", stats.requests, "client");
    table.row("succeeded", stats.succeeded, "client");
    // No fault here asks for a new login, so "needs login" counts as a failure too.
    table.row("failed", log.failed() + log.needs_login(), "client");
    for (reason, n) in &log.errors {
        table.row(format_args!("  failed: {reason}"), n, "client");
    }
    if log.bad_status > 0 {
        table.row("  status other than 200", log.bad_status, "client");
    }
    table.row("lost (no outcome, or two)", run.lost() + run.answered_twice(), "soak");
    table.row("throughput", format!("{:.0} req/s", stats.requests as f64 / secs), "client");
    table.row("refresh calls", issuer.refresh_calls, "issuer");
    table.row("refreshes succeeded", issuer.refresh_successes, "issuer");
    table.row("faults served", issuer.faults_served, "issuer");
    table.row("stale-401 replays", stats.stale_replays, "client");
    table.row("reuse attempts", issuer.reuse_attempts, "issuer");
    table.row("max refreshes of one token", issuer.refreshes_per_access_token_max, "issuer");
    table.latency_rows(&log.latencies);
    table.row("peak RSS (VmHWM) at start", kib(at_start.hwm_kib), "process");
    table.row("peak RSS (VmHWM) at end", kib(at_end.hwm_kib), "process");
    table.row("RSS (VmRSS) at end", kib(at_end.rss_kib), "process");
    table.print();
    println!("  faults: {}", faults.summary());
    for example in log.examples.iter().take(5) {
        println!("  failure e.g.: {example}");
    }

    let mut verdict = Verdict::default();
    run.check_one_outcome_each(&mut verdict);
    verdict.issuer_invariants(issuer, stats.succeeded);
    verdict.print("no lost request, no reuse, no token refreshed twice")
}
