//! reauth-nal-async on a real network stack (issue 13): `reauth firmware-async`, embassy-net
//! on a TAP device (embassy-net-tuntap) driven by embassy's executor, in a network namespace the
//! command makes, many tasks sharing one client against the mock issuer.
//!
//! The last test boots `firmware/embassy` (reauth-nal-async on embassy-executor and embassy-net,
//! feature `qemu`) on QEMU's `mps2-an386` board against the mock issuer on this host's loopback,
//! reached through QEMU's user-mode network.
//!
//! They need root, `ip` and `/dev/net/tun` (the QEMU test: `qemu-system-arm` and the
//! `thumbv7em-none-eabihf` target instead). They are `#[ignore]`d so that a plain `cargo test`
//! stays quick and needs none of it; `.ci/run` runs them with `--ignored`. Where something is
//! missing a test prints `skipped: WHY` and returns, unless `CI=true`: there it fails.
//!
//! The workload is the CLI's (1 s tokens, an expiry storm every 1.3 s, bounded in time and in
//! requests); its verdict checks every request succeeded, no refresh token was presented twice
//! and no access token was refreshed twice. The test also reads the table: refresh calls equal
//! refresh episodes. No timing is asserted; the latencies are printed.

mod support;

use core::time::Duration;
use std::path::Path;
use std::process::{Command, Stdio};

use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_testkit::tls::TestPki;
use support::{can_run_unless, has_thumb_target, is_root, on_path};

/// True when the test may go on; prints `skipped: WHY` and returns false when it may not, and
/// fails instead under CI.
fn can_run(test: &str) -> bool {
    let missing = if !is_root() {
        Some("not root (ip netns and ip tuntap need it)")
    } else if !on_path("ip") {
        Some("no `ip` command (iproute2)")
    } else if !Path::new("/dev/net/tun").exists() {
        Some("no /dev/net/tun")
    } else {
        None
    };
    can_run_unless(test, missing)
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

/// True when the QEMU test may go on (see [`can_run`]).
fn can_run_qemu(test: &str) -> bool {
    let missing = if !on_path("qemu-system-arm") {
        Some("no qemu-system-arm (apt-get install --no-install-recommends qemu-system-arm)")
    } else if !has_thumb_target() {
        Some("no thumbv7em-none-eabihf target (rustup target add thumbv7em-none-eabihf)")
    } else {
        None
    };
    can_run_unless(test, missing)
}

/// Boots `firmware/embassy` built with `features` on QEMU against a mock issuer (over HTTPS
/// with `pki`) for `seconds` of tokens living `lifetime`: every request answered, one refresh
/// call per refresh, no refresh token presented twice.
fn embassy_on_qemu(features: &str, pki: Option<&TestPki>, lifetime: Duration, seconds: u32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/embassy");
    let built = Command::new("cargo")
        .args(["build", "--release", "--features", features])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(built.success(), "building firmware/embassy failed");
    let elf = dir.join("target/thumbv7em-none-eabihf/release/reauth-embassy-firmware");

    let config = IssuerConfig { token_lifetime: lifetime, ..IssuerConfig::default() };
    let issuer = match pki {
        Some(pki) => MockIssuer::start_tls(config, pki).unwrap(),
        None => MockIssuer::start(config).unwrap(),
    };
    let tokens = issuer.login();
    issuer.reset_counters();
    // QEMU's user-mode network forwards the guest's 10.0.2.2 to this host's loopback.
    let mut settings = vec![
        "reauth-embassy-firmware".to_owned(),
        format!("issuer=10.0.2.2:{}", issuer.addr().port()),
        format!("refresh={}", tokens.refresh_token),
        format!("seconds={seconds}"),
    ];
    if let Some(pki) = pki {
        let hex: String = pki.ca_der().iter().map(|b| format!("{b:02x}")).collect();
        settings.push(format!("ca={hex}"));
    }
    let semihosting: String = settings.iter().map(|a| format!(",arg={a}")).collect();
    let output = Command::new("qemu-system-arm")
        .args(["-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-nic", "user,model=lan9118"])
        .arg("-semihosting-config")
        .arg(format!("enable=on,target=native{semihosting}"))
        .arg("-kernel")
        .arg(&elf)
        .stdin(Stdio::null())
        // QEMU's complaints can quote its command line, which holds the refresh token.
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let counters = issuer.counters();
    println!("firmware/embassy --features {features} on QEMU:\n{stdout}issuer: {counters:?}");
    assert!(output.status.success(), "QEMU ended with {:?}", output.status);
    let line = stdout.lines().find_map(|l| l.strip_prefix("reauth-embassy: result ")).unwrap();
    let value = |key: &str| -> u64 {
        let pair = line.split_whitespace().find_map(|p| p.strip_prefix(&format!("{key}=")));
        pair.unwrap().parse().unwrap()
    };
    assert!(value("succeeded") > 0, "{line}");
    assert_eq!(value("failed"), 0, "{line}");
    assert_eq!(value("needs_login"), 0, "{line}");
    assert_eq!(value("requests"), value("succeeded"), "{line}");
    assert!(value("refreshes") >= 2, "{line}");
    assert_eq!(value("refresh_calls"), counters.refresh_calls, "{line}");
    assert_eq!(value("refreshes"), counters.refresh_successes, "{line}");
    assert_eq!(counters.reuse_attempts, 0);
    assert!(counters.refreshes_per_access_token_max <= 1);
}

/// The embassy image on QEMU: two tasks sharing one client for 8 s of 1 s tokens.
#[test]
#[ignore = "needs qemu-system-arm and the thumbv7em target; .ci/run runs it"]
fn embassy_image_on_qemu_mps2_an386() {
    if can_run_qemu("embassy_image_on_qemu_mps2_an386") {
        embassy_on_qemu("qemu", None, Duration::from_secs(1), 8);
    }
}

/// The same over HTTPS: embedded-tls on the emulated Cortex-M4 against the issuer's rustls
/// listener, the run's CA pinned.
#[test]
#[ignore = "needs qemu-system-arm and the thumbv7em target; .ci/run runs it"]
fn embassy_image_on_qemu_mps2_an386_over_https() {
    if can_run_qemu("embassy_image_on_qemu_mps2_an386_over_https") {
        // The guest reaches the issuer as 10.0.2.2: the certificate is made for that name.
        let pki = TestPki::generate_for(&["10.0.2.2"]).unwrap();
        embassy_on_qemu("qemu,tls", Some(&pki), Duration::from_secs(2), 12);
    }
}
