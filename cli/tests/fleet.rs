//! One credential, many processes: `reauth fleet` runs real worker processes that share one
//! `FileStore`, against the loopback mock issuer (rotation, reuse revokes the session). These
//! tests read its summary: the shared run makes exactly one refresh call per expiry episode with
//! no reuse and no failure, the naive baseline does not, and the chaos runs (the lease holder
//! killed or stopped in the middle of its refresh) end as documented.

use std::process::Command;

/// Runs `reauth fleet ARGS`, asserts that its verdict held, and returns stdout.
fn fleet(args: &[&str]) -> String {
    let output =
        Command::new(env!("CARGO_BIN_EXE_reauth")).arg("fleet").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The shared and naive columns of the summary row `name`.
fn row<'a>(stdout: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{stdout}"));
    let mut columns = line[line.find(name).unwrap() + name.len()..].split_whitespace();
    let shared = columns.next().unwrap();
    let naive = columns.next().unwrap_or("-");
    (shared, naive)
}

fn number(column: &str) -> f64 {
    column.parse().unwrap_or_else(|_| panic!("not a number: {column}"))
}

#[test]
fn processes_sharing_a_file_store_make_one_refresh_per_expiry_and_the_naive_ones_do_not() {
    let out = fleet(&["--processes", "3", "--threads", "4", "--seconds", "3"]);
    let (shared, naive) = row(&out, "refresh calls per episode");
    assert_eq!(shared, "1.00", "{out}");
    let (shared_reuse, naive_reuse) = row(&out, "refresh-token reuse (issuer)");
    assert_eq!(shared_reuse, "0", "{out}");
    assert_eq!(row(&out, "failed").0, "0", "{out}");
    assert!(number(row(&out, "expiry episodes (issuer)").0) >= 3.0, "several expiries: {out}");
    assert!(number(row(&out, "records adopted").0) > 0.0, "processes adopted: {out}");
    // Without the lease every process refreshes with the token it read at start: the second
    // presentation is a reuse, and the server revokes the session for everyone.
    assert!(number(naive) > 1.0 || number(naive_reuse) > 0.0, "{out}");
    assert!(number(row(&out, "processes logged out").1) > 0.0, "{out}");
}

#[test]
fn lease_holder_killed_before_the_server_rotated_is_taken_over_after_its_lease() {
    let out =
        fleet(&["--processes", "3", "--threads", "2", "--seconds", "7", "--chaos", "sigkill"]);
    assert!(out.contains("chaos: SIGKILL"), "{out}");
    assert_eq!(row(&out, "refresh-token reuse (issuer)").0, "0", "{out}");
    assert_eq!(row(&out, "failed").0, "0", "{out}");
    assert!(number(row(&out, "expiry episodes (issuer)").0) >= 3.0, "refreshing went on: {out}");
}

#[test]
fn lease_holder_stopped_past_its_lease_neither_reuses_nor_loses_requests() {
    let out =
        fleet(&["--processes", "3", "--threads", "2", "--seconds", "8", "--chaos", "sigstop"]);
    assert!(out.contains("chaos: SIGSTOP"), "{out}");
    assert_eq!(row(&out, "refresh-token reuse (issuer)").0, "0", "{out}");
    assert_eq!(row(&out, "failed").0, "0", "{out}");
    assert_eq!(row(&out, "processes logged out").0, "0", "{out}");
}

#[test]
fn lease_holder_killed_after_the_server_rotated_loses_the_session_unless_the_server_forgives() {
    // What is lost: the killed holder had the only copy of the rotated token. The next holder
    // presents the consumed one, the server calls it a reuse and revokes the session.
    let args = ["--processes", "3", "--threads", "2", "--seconds", "7", "--chaos"];
    let out = fleet(&[&args[..], &["sigkill-rotated"]].concat());
    assert_eq!(row(&out, "refresh-token reuse (issuer)").0, "1", "{out}");
    assert_eq!(row(&out, "processes logged out").0, "2", "{out}");
    assert!(out.contains("as documented"), "{out}");
    // With a reuse grace on the server (Auth0, Okta) the next holder's presentation is forgiven
    // once and the fleet carries on.
    let out = fleet(&[&args[..], &["sigkill-rotated", "--reuse-grace", "30000"]].concat());
    assert_eq!(row(&out, "reuse forgiven in grace").0, "1", "{out}");
    assert_eq!(row(&out, "refresh-token reuse (issuer)").0, "0", "{out}");
    assert_eq!(row(&out, "failed").0, "0", "{out}");
}
