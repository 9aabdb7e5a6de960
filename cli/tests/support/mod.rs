//! What the tests on real network stacks (`async_stack`, `real_stack`) share: the checks of
//! what a run needs, and the rule for a test that cannot run here.

use std::path::Path;
use std::process::Command;

/// Whether a program is on the `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|line| {
            line.strip_prefix("Uid:").and_then(|ids| ids.split_whitespace().next()) == Some("0")
        })
    })
}

/// Whether the Rust standard library for `thumbv7em-none-eabihf` is installed.
pub(crate) fn has_thumb_target() -> bool {
    Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "thumbv7em-none-eabihf"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir()
        })
}

/// True when nothing is `missing` (why `test` cannot run here); otherwise prints
/// `skipped: WHY` and returns false, and fails instead under CI (`CI=true`).
pub(crate) fn can_run_unless(test: &str, missing: Option<&str>) -> bool {
    let Some(why) = missing else { return true };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test} cannot run in CI: {why}");
    println!("skipped: {test}: {why}");
    false
}
