//! reauth-nal on real network stacks (issue 10): `reauth firmware` over smoltcp (through
//! smoltcp-nal) on a TAP device, with and without keep-alive, and the firmware image of
//! `firmware/qemu` on QEMU's emulated Cortex-M4 board. Each run makes its own network namespace,
//! so every address it uses exists only there.
//!
//! They need root, `ip`, `/dev/net/tun`, and for QEMU `qemu-system-arm` and the
//! `thumbv7em-none-eabihf` target, which `.ci/run` installs. They are `#[ignore]`d so that a
//! plain `cargo test` stays quick and needs none of it; `.ci/run` runs them with `--ignored`.
//! Where something is missing a test prints `skipped: WHY` and returns, unless `CI=true`: there
//! it fails.
//!
//! The workload is the CLI's (1 s tokens, an expiry storm every 1.3 s, bounded in time and in
//! requests); its verdict checks every request succeeded, no refresh token was presented twice
//! and no access token was refreshed twice. The tests also read the table: refresh calls equal
//! refresh episodes. No timing is asserted; the latencies are printed.

mod support;

use std::path::Path;
use std::process::Command;

use support::{can_run_unless, has_thumb_target, is_root, on_path};

/// `None` when the run can happen here, or why not.
fn missing(qemu: bool) -> Option<&'static str> {
    if !is_root() {
        Some("not root (ip netns and ip tuntap need it)")
    } else if !on_path("ip") {
        Some("no `ip` command (iproute2)")
    } else if !qemu && !Path::new("/dev/net/tun").exists() {
        Some("no /dev/net/tun")
    } else if qemu && !on_path("qemu-system-arm") {
        Some("no qemu-system-arm (apt-get install --no-install-recommends qemu-system-arm)")
    } else if qemu && !has_thumb_target() {
        Some("no thumbv7em-none-eabihf target (rustup target add thumbv7em-none-eabihf)")
    } else {
        None
    }
}

/// True when the test may go on; prints `skipped: WHY` and returns false when it may not, and
/// fails instead under CI.
fn can_run(test: &str, qemu: bool) -> bool {
    can_run_unless(test, missing(qemu))
}

/// Runs `reauth firmware ARGS`, prints its summary, asserts its verdict and that refresh calls
/// equal refresh episodes; returns stdout.
fn firmware(args: &[&str]) -> String {
    let output =
        Command::new(env!("CARGO_BIN_EXE_reauth")).arg("firmware").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("reauth firmware {}\n{stdout}", args.join(" "));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok: no failed request, no reuse, no token refreshed twice"));
    let value = |row: &str| -> u64 {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(row)).unwrap();
        line[row.len() + 2..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(value("failed"), 0, "{stdout}");
    assert_eq!(value("reuse attempts"), 0, "{stdout}");
    assert_eq!(value("refresh calls"), value("refresh episodes"), "{stdout}");
    assert!(value("refresh episodes") >= 2, "{stdout}");
    stdout
}

#[test]
#[ignore = "needs root and /dev/net/tun; .ci/run runs it"]
fn smoltcp_on_a_tap_device_with_keep_alive() {
    if can_run("smoltcp_on_a_tap_device_with_keep_alive", false) {
        firmware(&["--stack", "smoltcp-tap", "--duration", "8", "--keep-alive", "true"]);
    }
}

#[test]
#[ignore = "needs root and /dev/net/tun; .ci/run runs it"]
fn smoltcp_on_a_tap_device_without_keep_alive() {
    if can_run("smoltcp_on_a_tap_device_without_keep_alive", false) {
        firmware(&["--stack", "smoltcp-tap", "--duration", "8", "--keep-alive", "false"]);
    }
}

#[test]
#[ignore = "needs root, qemu-system-arm and the thumbv7em target; .ci/run runs it"]
fn firmware_on_qemu_mps2_an386() {
    if can_run("firmware_on_qemu_mps2_an386", true) {
        firmware(&["--stack", "qemu", "--duration", "10"]);
    }
}

/// One connection per request: QEMU's user-mode network holds each closed one in TIME_WAIT for
/// 10 s, so the firmware's source ports must not repeat within that (`firmware/qemu/src/ports.rs`).
#[test]
#[ignore = "needs root, qemu-system-arm and the thumbv7em target; .ci/run runs it"]
fn firmware_on_qemu_mps2_an386_without_keep_alive() {
    if can_run("firmware_on_qemu_mps2_an386_without_keep_alive", true) {
        firmware(&["--stack", "qemu", "--duration", "8", "--keep-alive", "false"]);
    }
}
