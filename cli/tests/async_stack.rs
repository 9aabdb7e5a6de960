//! reauth-nal-async on a real network stack (issue 13): `reauth firmware-async`, embassy-net
//! on a TAP device (embassy-net-tuntap) driven by embassy's executor, in a network namespace the
//! command makes, many tasks sharing one client against the mock issuer.
//!
//! They need root, `ip` and `/dev/net/tun`. They are `#[ignore]`d so that a plain `cargo test`
//! stays quick and needs none of it; `.ci/run` runs them with `--ignored`. Where something is
//! missing a test prints `skipped: WHY` and returns, unless `CI=true`: there it fails.
//!
//! The workload is the CLI's (1 s tokens, an expiry storm every 1.3 s, bounded in time and in
//! requests); its verdict checks every request succeeded, no refresh token was presented twice
//! and no access token was refreshed twice. The test also reads the table: refresh calls equal
//! refresh episodes. No timing is asserted; the latencies are printed.

use std::path::Path;
use std::process::Command;

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|line| {
            line.strip_prefix("Uid:").and_then(|ids| ids.split_whitespace().next()) == Some("0")
        })
    })
}

/// True when the test may go on; prints `skipped: WHY` and returns false when it may not, and
/// fails instead under CI.
fn can_run(test: &str) -> bool {
    let why = if !is_root() {
        "not root (ip netns and ip tuntap need it)"
    } else if !on_path("ip") {
        "no `ip` command (iproute2)"
    } else if !Path::new("/dev/net/tun").exists() {
        "no /dev/net/tun"
    } else {
        return true;
    };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test} cannot run in CI: {why}");
    println!("skipped: {test}: {why}");
    false
}

/// Runs `reauth firmware-async ARGS`, prints its summary, asserts its verdict and that refresh
/// calls equal refresh episodes.
fn firmware_async(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_reauth"))
        .arg("firmware-async")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("reauth firmware-async {}\n{stdout}", args.join(" "));
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
    assert!(value("succeeded") > 0, "{stdout}");
    stdout
}

#[test]
#[ignore = "needs root and /dev/net/tun; .ci/run runs it"]
fn embassy_net_on_a_tap_device_over_http() {
    if can_run("embassy_net_on_a_tap_device_over_http") {
        firmware_async(&["--duration", "8", "--tasks", "16"]);
    }
}

#[test]
#[ignore = "needs root and /dev/net/tun; .ci/run runs it"]
fn embassy_net_on_a_tap_device_over_https() {
    if can_run("embassy_net_on_a_tap_device_over_https") {
        let stdout = firmware_async(&["--duration", "8", "--tasks", "8", "--https"]);
        assert!(stdout.contains("HTTPS (embedded-tls, pinned CA)"), "{stdout}");
    }
}
