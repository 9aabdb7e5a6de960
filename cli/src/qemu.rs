//! `reauth firmware --stack qemu`: the firmware image of `firmware/qemu` on QEMU's `mps2-an386`
//! board (Cortex-M4F), reauth-nal over smoltcp-nal and smoltcp on the board's emulated LAN9118
//! NIC, against the mock issuer on this host's loopback.
//!
//! 1. Build the image (`cargo build --release` in `firmware/qemu`) unless `--elf` names one.
//! 2. Start the issuer on 127.0.0.1, log in, and hand the firmware the refresh token only, as a
//!    device restores it from flash: its first request starts a refresh.
//! 3. Run QEMU with user-mode networking (the guest's 10.0.2.2 is this host's loopback) and the
//!    run's settings as semihosting arguments; expire every access token now and then (a storm)
//!    while it runs, within a time limit.
//! 4. Read the firmware's `result` line from QEMU's output, put it together with the issuer's
//!    counters in the summary table, and judge it.
//!
//! The refresh token is on QEMU's command line and nowhere in the output.

use core::time::Duration;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use reauth_testkit::issuer::Counters;

use crate::demo::start_issuer;
use crate::fault::{FaultMode, FaultSchedule, Storms};
use crate::firmware::Args;
use crate::report::{Table, Verdict};

/// The QEMU binary and board.
const QEMU: &str = "qemu-system-arm";
const MACHINE: &str = "mps2-an386";
/// The firmware's crate, from this crate's directory.
const FIRMWARE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware/qemu");
const FIRMWARE_ELF: &str = "target/thumbv7em-none-eabihf/release/reauth-qemu-firmware";
/// Where the guest reaches the host's loopback through QEMU's user-mode network.
const HOST_FROM_GUEST: &str = "10.0.2.2";
/// Beyond its own run time, how long the firmware may take to drain its open requests (its
/// wait and refresh timeouts) and exit, before QEMU is stopped.
const GRACE: Duration = Duration::from_secs(60);

/// Runs the firmware on QEMU and prints the summary; the exit code is the verdict.
pub(crate) fn run(args: &Args) -> ExitCode {
    match qemu(args) {
        Ok(report) => report.print_and_judge(args),
        Err(e) => {
            eprintln!("reauth firmware --stack qemu: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the firmware printed, and the issuer's counters.
#[derive(Debug, Default)]
struct Report {
    /// The `key=value` pairs of the firmware's `result` line.
    result: BTreeMap<String, u64>,
    /// The firmware's `failure:` lines.
    failures: Vec<String>,
    issuer: Counters,
    elapsed: Duration,
    token_lifetime: Duration,
    /// QEMU's exit status was success.
    exited_cleanly: bool,
}

fn qemu(args: &Args) -> Result<Report, Box<dyn core::error::Error>> {
    let elf = match &args.elf {
        Some(elf) => elf.clone(),
        None => build_firmware()?,
    };
    let token_lifetime = Duration::from_millis(args.run.token_lifetime);
    let issuer = start_issuer(token_lifetime, Duration::from_millis(args.run.latency), args.seed)?;
    let tokens = issuer.login();
    issuer.reset_counters();

    let seconds = args.run.duration.clamp(1.0, 600.0).ceil() as u64;
    let requests = args.requests.unwrap_or(1_000_000);
    let settings = [
        "reauth-qemu-firmware".to_owned(),
        format!("issuer={HOST_FROM_GUEST}:{}", issuer.addr().port()),
        format!("refresh={}", tokens.refresh_token),
        format!("requests={requests}"),
        format!("seconds={seconds}"),
        format!("keepalive={}", u8::from(args.keep_alive)),
        format!("seed={}", args.seed),
        format!("timestamps={}", u8::from(args.tcp_timestamps)),
        format!("freshports={}", u8::from(args.fresh_ports)),
    ];
    // QEMU's option syntax: a comma inside a value is written twice.
    let semihosting: String =
        settings.iter().map(|a| format!(",arg={}", a.replace(',', ",,"))).collect();
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(["-M", MACHINE, "-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-nic", "user,model=lan9118"])
        .arg("-semihosting-config")
        .arg(format!("enable=on,target=native{semihosting}"))
        .arg("-kernel")
        .arg(&elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    // QEMU quotes a bad option's value in its complaints, and the refresh token is one: what it
    // says goes out with the token blotted out.
    let stderr = child.stderr.take().ok_or("QEMU's errors are not piped")?;
    let secret = tokens.refresh_token.clone();
    let complaints = thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  qemu: {}", line.replace(&secret, "<refresh token>"));
        }
    });
    let stdout = child.stdout.take().ok_or("QEMU's output is not piped")?;
    let (lines, output) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = start + Duration::from_secs(seconds) + GRACE;
    let storm_every = (args.storm_every > 0).then(|| Duration::from_millis(args.storm_every));
    let mut storms = Storms::new(storm_every, start);
    let mut faults = FaultSchedule::fixed(args.run.fault, token_lifetime, Duration::from_secs(10));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        storms.tick(&issuer, now);
        faults.tick(&issuer);
        thread::sleep(Duration::from_millis(5));
    };
    let _ = reader.join();
    let _ = complaints.join();
    let mut report = Report {
        issuer: issuer.counters(),
        elapsed: start.elapsed(),
        token_lifetime,
        exited_cleanly: status.is_some_and(|s| s.success()),
        ..Report::default()
    };
    for line in output.try_iter() {
        if let Some(pairs) = line.strip_prefix("reauth-qemu: result ") {
            for pair in pairs.split_whitespace() {
                if let Some((key, value)) = pair.split_once('=')
                    && let Ok(value) = value.parse()
                {
                    report.result.insert(key.to_owned(), value);
                }
            }
        } else if let Some(failure) = line.strip_prefix("reauth-qemu: failure: ") {
            report.failures.push(failure.to_owned());
        } else {
            println!("  qemu: {line}");
        }
    }
    if status.is_none() {
        report
            .failures
            .push(format!("QEMU did not exit within {} s", (deadline - start).as_secs()));
    }
    Ok(report)
}

/// Builds `firmware/qemu` in release mode; the path of its image.
fn build_firmware() -> Result<PathBuf, Box<dyn core::error::Error>> {
    let dir = Path::new(FIRMWARE_DIR);
    if !dir.is_dir() {
        // A `reauth` installed from its package: the firmware is not part of it.
        return Err(format!(
            "{} not found: --stack qemu builds the firmware of a copy of the reauth repository; \
             run it from one (cargo run -p reauth-cli -- firmware --stack qemu), or pass an \
             image with --elf",
            dir.display()
        )
        .into());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("reauth firmware: building {}", dir.display());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .current_dir(dir)
        // This process's own cargo settings (target dir, profile flags) are not the firmware's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()?;
    if !status.success() {
        return Err(format!("building {} failed ({status})", dir.display()).into());
    }
    Ok(dir.join(FIRMWARE_ELF))
}

impl Report {
    fn value(&self, key: &str) -> u64 {
        self.result.get(key).copied().unwrap_or(0)
    }

    /// Prints the summary table and the verdict; the exit code is the verdict.
    fn print_and_judge(&self, args: &Args) -> ExitCode {
        let issuer = &self.issuer;
        let mut table = Table::default();
        table.row("stack", args.stack.name(), "");
        table.row("keep-alive", if args.keep_alive { "on" } else { "off" }, "");
        table.row("TCP timestamps", if args.tcp_timestamps { "on" } else { "off" }, "");
        table.row("fresh source ports", if args.fresh_ports { "on" } else { "off" }, "");
        table.row("duration", format!("{:.2} s", self.elapsed.as_secs_f64()), "host");
        table.row("token lifetime", format!("{} ms", self.token_lifetime.as_millis()), "issuer");
        table.row("fault", args.run.fault.name(), "");
        for (row, key) in [
            ("requests", "requests"),
            ("succeeded", "succeeded"),
            ("failed", "failed"),
            ("needs-login rejections", "needs_login"),
            ("never answered", "lost"),
            ("answered twice", "answered_twice"),
            ("refresh episodes", "refreshed"),
        ] {
            table.row(row, self.value(key), "firmware");
        }
        table.row("connections", issuer.connections_accepted, "issuer");
        table.row("refresh calls", issuer.refresh_calls, "issuer");
        table.row("refreshes succeeded", issuer.refresh_successes, "issuer");
        table.row("expiry episodes", issuer.expiry_episodes, "issuer");
        table.row("reuse attempts", issuer.reuse_attempts, "issuer");
        table.row("max refreshes of one token", issuer.refreshes_per_access_token_max, "issuer");
        table.row("latency p50", format!("{} ms", self.value("p50_ms")), "firmware");
        table.row("latency p99", format!("{} ms", self.value("p99_ms")), "firmware");
        table.row("latency max", format!("{} ms", self.value("max_ms")), "firmware");
        table.print();

        let mut verdict = Verdict::default();
        verdict.check(!self.exited_cleanly, || "the firmware did not exit cleanly".to_owned());
        verdict.check(self.result.is_empty(), || "the firmware printed no result".to_owned());
        verdict.check(self.value("failed") > 0 || !self.failures.is_empty(), || {
            let examples = self.failures.iter().map(|e| format!("\n    e.g. {e}"));
            format!("{} requests failed{}", self.value("failed"), examples.collect::<String>())
        });
        verdict.check(self.value("needs_login") > 0 && args.run.fault != FaultMode::Refuse, || {
            format!("{} requests were told to log in again", self.value("needs_login"))
        });
        verdict.check(self.value("lost") > 0, || {
            format!("{} requests never got an outcome", self.value("lost"))
        });
        verdict.check(self.value("answered_twice") > 0, || {
            format!(
                "{} events for requests that already had an outcome",
                self.value("answered_twice")
            )
        });
        verdict.check(
            args.run.fault == FaultMode::None && issuer.refresh_calls != self.value("refreshed"),
            || {
                format!(
                    "{} refresh calls for {} refresh episodes: a refresh was sent twice",
                    issuer.refresh_calls,
                    self.value("refreshed")
                )
            },
        );
        verdict.issuer_invariants(issuer, self.value("succeeded"));
        verdict.print("no failed request, no reuse, no token refreshed twice")
    }
}
