//! Runs the `reauth` binary: the verdicts of `demo`, `firmware` and `soak` in short runs, and
//! `login` (in a browser, played by the test, and `--device`) and `get` against the loopback
//! mock issuer.

use std::path::PathBuf;
use std::process::Command;

use reauth_testkit::issuer::{DeviceAnswer, IssuerConfig, MockIssuer};

fn reauth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reauth"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reauth-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn short_demo_ends_with_a_clean_summary() {
    let output = reauth()
        .args(["demo", "--threads", "4", "--duration", "1", "--storm-every", "300"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for row in ["requests", "refresh calls", "stale-401 replays", "reuse attempts", "latency p99"] {
        assert!(stdout.contains(row), "{row} missing from\n{stdout}");
    }
    assert!(stdout.contains("ok: no failed request, no reuse, no token refreshed twice"));
}

/// Runs `reauth ARGS`, asserts that it succeeded and printed every row, and returns stdout.
fn run_clean(args: &[&str], rows: &[&str]) -> String {
    let output = reauth().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for row in rows {
        assert!(stdout.contains(row), "{row} missing from\n{stdout}");
    }
    stdout
}

#[test]
fn short_firmware_run_ends_with_a_clean_summary() {
    let stdout = run_clean(
        &["firmware", "--duration", "1", "--token-lifetime", "300", "--storm-every", "400"],
        &["slots", "refresh calls", "expiry episodes", "stale-401 replays", "latency p99"],
    );
    assert!(stdout.contains("ok: no failed request, no reuse, no token refreshed twice"));
    let value = |row: &str| -> u64 {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(row)).unwrap();
        line[row.len() + 2..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(value("refreshes succeeded") >= 2, "{stdout}");
    assert!(value("expiry episodes") >= 1, "{stdout}");
}

#[test]
fn firmware_counts_requests_and_rides_out_faults() {
    let stdout = run_clean(
        &["firmware", "--requests", "300", "--fault", "503", "--token-lifetime", "200"],
        &["fault                                     503"],
    );
    assert!(stdout.contains("succeeded                                 300"), "{stdout}");
}

#[test]
fn firmware_logs_in_through_the_device_flow_then_runs_the_workload() {
    let stdout = run_clean(
        &["firmware", "--device-login", "--requests", "200", "--token-lifetime", "300"],
        &["with the code", "device login: approved after 1 poll(s)"],
    );
    assert!(stdout.contains("succeeded                                 200"), "{stdout}");
    assert!(stdout.contains("ok: no failed request, no reuse, no token refreshed twice"));
}

#[test]
fn short_soak_reports_memory_and_no_lost_request() {
    let stdout = run_clean(
        &["soak", "--duration", "1.5", "--sample-every", "0.5", "--min-fault-gap", "200"],
        &["VmRSS", "peak RSS (VmHWM) at start", "peak RSS (VmHWM) at end", "faults injected"],
    );
    assert!(stdout.contains("lost (no outcome, or two)                   0"), "{stdout}");
    assert!(stdout.contains("ok: no lost request, no reuse"), "{stdout}");
}

#[test]
fn get_seeds_the_store_then_resumes_from_it() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let dir = temp_dir("get");
    let store = dir.join("tokens.json");
    let url = issuer.api_url("hello");
    let token_url = issuer.token_url();
    let base = ["get", &url, "--token-url", &token_url, "--store", store.to_str().unwrap()];

    // An empty store: a clear message on how to seed it.
    let output = reauth().args(base).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--refresh-token-env"));

    let tokens = issuer.login();
    let output = reauth()
        .args(base)
        .args(["--refresh-token-env", "SEED_REFRESH", "--client-id", "cli"])
        .env("SEED_REFRESH", &tokens.refresh_token)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(r#""path":"/api/hello""#));

    // The rotated refresh token was saved: a second run needs no seed, and nothing is reused.
    issuer.expire_all_now();
    let output = reauth().args(base).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let counters = issuer.counters();
    assert_eq!((counters.refresh_successes, counters.reuse_attempts), (2, 0), "{counters:?}");
    let saved = std::fs::read_to_string(&store).unwrap();
    assert!(!saved.contains(&tokens.refresh_token), "the consumed token was replaced");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn standalone_issuer_serves_a_users_own_client_with_the_login_it_prints() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut issuer = reauth()
        .args(["issuer", "--seconds", "20", "--token-lifetime", "1000", "--revoke-on-reuse"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(issuer.stdout.take().unwrap()).lines();
    let mut field = |prefix: &str| -> String {
        let line = lines.next().unwrap().unwrap();
        line.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{prefix}: {line}"))
            .trim()
            .to_owned()
    };
    let base = field("reauth issuer: listening on");
    let token_url = field("token endpoint");
    let _classic = field("classic refresh");
    let _device = field("device login");
    let _authorize = field("authorize");
    let _api = field("protected API");
    let login = field("login");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let refresh = login.split("\"refresh_token\":\"").nth(1).unwrap().split('"').next().unwrap();
    // A user's program (here `reauth get`) starts from the printed login and keeps working
    // across expiries: each run refreshes with the token the last one saved.
    let dir = temp_dir("standalone-issuer");
    let store = dir.join("tokens.json");
    let url = format!("{base}/api/mine");
    let args = ["get", &url, "--token-url", &token_url, "--store", store.to_str().unwrap()];
    let seeded = reauth()
        .args(args)
        .args(["--refresh-token-env", "SEED"])
        .env("SEED", refresh)
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
    std::thread::sleep(core::time::Duration::from_millis(1_100));
    let again = reauth().args(args).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stdout).contains(r#""path":"/api/mine""#));
    issuer.kill().unwrap();
    issuer.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_authenticates_with_http_basic_and_shows_the_servers_reason_for_a_refusal() {
    use reauth_core::oauth::ClientAuth;
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("cli".to_owned()),
        client_secret: Some("s3cret".to_owned()),
        client_auth: ClientAuth::Basic,
        ..IssuerConfig::default()
    })
    .unwrap();
    let dir = temp_dir("get-basic");
    let store = dir.join("tokens.json");
    let url = issuer.api_url("basic");
    let token_url = issuer.token_url();
    let base = ["get", &url, "--token-url", &token_url, "--store", store.to_str().unwrap()];
    let seed = issuer.login();
    let run = |extra: &[&str]| {
        reauth()
            .args(base)
            .args(["--client-id", "cli", "--client-secret-env", "SECRET"])
            .args(extra)
            .env("SECRET", "s3cret")
            .env("SEED", &seed.refresh_token)
            .output()
            .unwrap()
    };
    // The server's default method (Basic), as reauth's default: the refresh works.
    let ok = run(&["--refresh-token-env", "SEED"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The secret in the body instead: refused, and the user is told why and what to check.
    issuer.expire_all_now();
    let refused = run(&["--client-auth", "post"]);
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("invalid_client: The client cannot authenticate with methods"),
        "{stderr}"
    );
    assert!(stderr.contains("set up wrong"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // A refusal of the client keeps the stored token: with the right settings it works again.
    let fixed = run(&[]);
    assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn device_login_fills_the_store_that_get_uses() {
    let issuer = MockIssuer::start(IssuerConfig {
        device_interval: core::time::Duration::ZERO,
        device_answer: DeviceAnswer::ApproveAfter(2),
        client_id: Some("cli".into()),
        ..IssuerConfig::default()
    })
    .unwrap();
    let dir = temp_dir("device-login");
    let store = dir.join("tokens.json");
    let store = store.to_str().unwrap();
    let (token_url, device_url) = (issuer.token_url(), issuer.device_authorization_url());
    let login = [
        "login",
        "--device",
        "--token-url",
        &token_url,
        "--device-url",
        &device_url,
        "--store",
        store,
        "--client-id",
        "cli",
    ];
    let output = reauth().args(login).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("and enter the code"), "{stdout}");
    assert!(stdout.contains("reauth login: approved; tokens saved to"), "{stdout}");
    let c = issuer.counters();
    assert_eq!((c.device_authorizations, c.device_polls, c.device_approvals), (1, 2, 1));

    let url = issuer.api_url("after-login");
    let get = ["get", &url, "--token-url", &token_url, "--store", store, "--client-id", "cli"];
    let output = reauth().args(get).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(r#""path":"/api/after-login""#));
    // And across an expiry: the session refreshes from the store.
    issuer.expire_all_now();
    let output = reauth().args(get).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(issuer.counters().reuse_attempts, 0);

    // A denied login leaves a failure, and no --device is a usage error.
    let denying = MockIssuer::start(IssuerConfig {
        device_interval: core::time::Duration::ZERO,
        device_answer: DeviceAnswer::DenyAfter(1),
        ..IssuerConfig::default()
    })
    .unwrap();
    let (token_url, device_url) = (denying.token_url(), denying.device_authorization_url());
    let other = dir.join("denied.json");
    let denied = reauth()
        .args(["login", "--device", "--token-url", &token_url, "--device-url", &device_url])
        .args(["--store", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("denied"));
    assert!(!other.exists());
    let usage = reauth()
        .args(["login", "--token-url", &token_url, "--device-url", &device_url, "--store", store])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn device_login_against_the_standalone_issuer() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut issuer = reauth()
        .args(["issuer", "--seconds", "20", "--device-interval", "1", "--device-approve-after"])
        .arg("1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(issuer.stdout.take().unwrap()).lines();
    let mut urls = std::collections::HashMap::new();
    for _ in 0..6 {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.split_whitespace().last() {
            urls.insert(line.trim().split("  ").next().unwrap().to_owned(), url.to_owned());
        }
    }
    let token_url = &urls["token endpoint"];
    let device_url = &urls["device login"];
    let api = urls["protected API"].replace("anything", "mine");
    let dir = temp_dir("device-standalone");
    let store = dir.join("tokens.json");
    let store = store.to_str().unwrap();
    let login = reauth()
        .args(["login", "--device", "--token-url", token_url, "--device-url", device_url])
        .args(["--store", store])
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let get = reauth().args(["get", &api, "--token-url", token_url, "--store", store]).output();
    let get = get.unwrap();
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    assert!(String::from_utf8_lossy(&get.stdout).contains(r#""path":"/api/mine""#));
    issuer.kill().unwrap();
    issuer.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_over_https_trusts_the_private_ca_it_is_given_and_names_the_problem_otherwise() {
    let pki = reauth_testkit::tls::TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let dir = temp_dir("get-tls");
    let files = pki.write_to(&dir).unwrap();
    let store = dir.join("tokens.json");
    let url = issuer.api_url("tls");
    let token_url = issuer.token_url();
    let base = ["get", &url, "--token-url", &token_url, "--store", store.to_str().unwrap()];
    let seed = issuer.login();
    // Without the CA: the refresh meets an unknown issuer and says so; nothing is retried.
    let untrusted = reauth()
        .args(base)
        .args(["--refresh-token-env", "SEED"])
        .env("SEED", &seed.refresh_token)
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert!(!stderr.contains("log in again"), "{stderr}");
    assert_eq!(issuer.counters().refresh_calls, 0);
    // With it: the stored token was kept, the refresh and the GET go through.
    let trusted = reauth()
        .args(base)
        .args(["--root-certificates", files.ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(trusted.status.success(), "{}", String::from_utf8_lossy(&trusted.stderr));
    assert!(String::from_utf8_lossy(&trusted.stdout).contains(r#""path":"/api/tls""#));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `reauth login --device --root-certificates`: both endpoints of the device grant are
/// verified against the CA given once (the login shares the client's TLS settings).
#[test]
fn device_login_over_https_trusts_the_private_ca_it_is_given() {
    let pki = reauth_testkit::tls::TestPki::generate().unwrap();
    let config = IssuerConfig {
        device_interval: core::time::Duration::ZERO,
        device_answer: DeviceAnswer::ApproveAfter(1),
        ..IssuerConfig::default()
    };
    let issuer = MockIssuer::start_tls(config, &pki).unwrap();
    let dir = temp_dir("device-login-tls");
    let files = pki.write_to(&dir).unwrap();
    let store = dir.join("tokens.json");
    let (token_url, device_url) = (issuer.token_url(), issuer.device_authorization_url());
    let login = ["login", "--device", "--token-url", &token_url, "--device-url", &device_url];
    let login = || {
        let mut command = reauth();
        command.args(login).args(["--store", store.to_str().unwrap()]);
        command
    };
    let untrusted = login().output().unwrap();
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    let trusted =
        login().args(["--root-certificates", files.ca.to_str().unwrap()]).output().unwrap();
    assert!(trusted.status.success(), "{}", String::from_utf8_lossy(&trusted.stderr));
    let c = issuer.counters();
    assert_eq!((c.device_authorizations, c.device_approvals), (1, 1), "{c:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_refuses_a_plain_http_token_endpoint_off_loopback() {
    let dir = temp_dir("get-insecure");
    let store = dir.join("tokens.json");
    let output = reauth()
        .args(["get", "https://api.example.invalid/", "--token-url"])
        .args(["http://auth.example.invalid/token", "--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("plain http") && stderr.contains("http://auth.example.invalid"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Plays the user's browser for `reauth login`: reads its stdout up to the authorization URL,
/// visits it and follows the redirects to the loopback listener; returns the final status and
/// page, and the rest of stdout.
fn be_the_browser(login: &mut std::process::Child) -> (u16, String, String) {
    use std::io::{BufRead, BufReader, Read};

    let mut stdout = BufReader::new(login.stdout.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    // Bounded: the URL is the second line.
    for _ in 0..10 {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(found) = line.trim().strip_prefix("http://") {
            url = Some(format!("http://{found}"));
            break;
        }
    }
    let url = url.expect("no authorization URL printed");
    let agent: reauth_ureq::ureq::Agent = reauth_ureq::ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(core::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(&url).call().unwrap();
    let status = response.status().as_u16();
    let page = response.body_mut().read_to_string().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    (status, page, rest)
}

/// A confidential client registered for `client_secret_post`: `reauth login --client-auth post`
/// sends the secret in the body at the code exchange (Basic would be refused), then `reauth get`
/// with the same option refreshes.
#[test]
fn browser_login_of_a_client_registered_for_the_body_secret() {
    use std::process::Stdio;

    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("cli".into()),
        client_secret: Some("body secret".into()),
        client_auth: reauth_core::oauth::ClientAuth::Post,
        ..IssuerConfig::default()
    })
    .unwrap();
    let dir = temp_dir("browser-login-post");
    let store = dir.join("tokens.json");
    let store = store.to_str().unwrap();
    let (authorize_url, token_url) = (issuer.authorization_url(), issuer.token_url());
    let client = ["--client-id", "cli", "--client-secret-env", "SECRET", "--client-auth", "post"];
    let mut login = reauth()
        .args(["login", "--authorize-url", &authorize_url, "--token-url", &token_url])
        .args(client)
        .args(["--store", store, "--no-browser"])
        .env("SECRET", "body secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, page, rest) = be_the_browser(&mut login);
    let output = login.wait_with_output().unwrap();
    assert!(output.status.success(), "{rest}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(status, 200, "{page}");
    assert_eq!(issuer.counters().code_redemptions, 1);

    issuer.expire_all_now();
    let before = issuer.counters().refresh_successes;
    let url = issuer.api_url("after-post-login");
    let output = reauth()
        .args(["get", &url, "--token-url", &token_url, "--store", store])
        .args(client)
        .env("SECRET", "body secret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(issuer.counters().refresh_successes, before + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn browser_login_fills_the_store_that_get_uses() {
    use std::process::Stdio;

    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("cli".into()),
        ..IssuerConfig::default()
    })
    .unwrap();
    let dir = temp_dir("browser-login");
    let store = dir.join("tokens.json");
    let store = store.to_str().unwrap();
    let (authorize_url, token_url) = (issuer.authorization_url(), issuer.token_url());
    let mut login = reauth()
        .args(["login", "--authorize-url", &authorize_url, "--token-url", &token_url])
        .args(["--client-id", "cli", "--scope", "api", "--store", store, "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, page, rest) = be_the_browser(&mut login);
    let output = login.wait_with_output().unwrap();
    assert!(output.status.success(), "{rest}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Logged in"), "{page}");
    assert!(rest.contains("reauth login: logged in; tokens saved to"), "{rest}");
    let c = issuer.counters();
    assert_eq!((c.authorizations, c.code_redemptions, c.pkce_failures), (1, 1, 0));

    let url = issuer.api_url("after-browser-login");
    let get = ["get", &url, "--token-url", &token_url, "--store", store, "--client-id", "cli"];
    let output = reauth().args(get).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(r#""path":"/api/after-browser-login""#)
    );
    issuer.expire_all_now();
    let output = reauth().args(get).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(issuer.counters().reuse_attempts, 0);

    // A browser that never comes back ends the login at --wait, with nothing stored.
    let other = dir.join("never.json");
    let timed_out = reauth()
        .args(["login", "--authorize-url", &authorize_url, "--token-url", &token_url])
        .args(["--client-id", "cli", "--store", other.to_str().unwrap(), "--no-browser"])
        .args(["--wait", "1"])
        .output()
        .unwrap();
    assert_eq!(timed_out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&timed_out.stderr).contains("did not come back"));
    assert!(!other.exists());
    // The browser flow needs its endpoint and a client id.
    let usage = reauth()
        .args(["login", "--authorize-url", &authorize_url, "--token-url", &token_url])
        .args(["--store", store])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_with_an_issuer_discovers_the_token_endpoint_and_the_auth_method() {
    use reauth_core::oauth::ClientAuth;
    // Registered for the body secret only: Basic (reauth's default) would be refused, so the
    // method must come from the metadata.
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("cli".to_owned()),
        client_secret: Some("s3cret".to_owned()),
        client_auth: ClientAuth::Post,
        ..IssuerConfig::default()
    })
    .unwrap();
    let dir = temp_dir("get-issuer");
    let store = dir.join("tokens.json");
    let seed = issuer.login();
    let output = reauth()
        .args(["get", &issuer.api_url("found"), "--issuer", &issuer.base_url()])
        .args(["--store", store.to_str().unwrap(), "--client-id", "cli"])
        .args(["--client-secret-env", "SECRET", "--refresh-token-env", "SEED"])
        .env("SECRET", "s3cret")
        .env("SEED", &seed.refresh_token)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(r#""path":"/api/found""#));
    assert_eq!(issuer.counters().refresh_successes, 1);
    // An issuer whose metadata names another: refused, with the reason.
    let output = reauth()
        .args(["get", &issuer.api_url("found"), "--store", store.to_str().unwrap()])
        .args(["--issuer", &format!("{}/wrong-issuer", issuer.base_url())])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("someone-else"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn browser_login_against_the_standalone_issuer_that_denies() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut issuer = reauth()
        .args(["issuer", "--seconds", "20", "--authorize", "deny"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(issuer.stdout.take().unwrap()).lines();
    let mut urls = std::collections::HashMap::new();
    for _ in 0..6 {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.split_whitespace().last() {
            urls.insert(line.trim().split("  ").next().unwrap().to_owned(), url.to_owned());
        }
    }
    let dir = temp_dir("browser-denied");
    let store = dir.join("tokens.json");
    let mut login = reauth()
        .args(["login", "--authorize-url", &urls["authorize"]])
        .args(["--token-url", &urls["token endpoint"], "--client-id", "mine", "--no-browser"])
        .args(["--store", store.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, page, _) = be_the_browser(&mut login);
    let output = login.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the user denied the login (access_denied)"), "{stderr}");
    assert_eq!(status, 400);
    assert!(page.contains("Login failed"), "{page}");
    assert!(!store.exists());
    issuer.kill().unwrap();
    issuer.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn get_with_a_private_key_signs_its_refreshes_and_names_an_unusable_key() {
    // The issuer verifies the assertions with the public key.
    let public = include_str!("../../adapters/ureq/tests/data/ec-test-key.pub.pem");
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("cli".to_owned()),
        client_assertion_key: Some(public.to_owned()),
        ..IssuerConfig::default()
    })
    .unwrap();
    let dir = temp_dir("get-private-key");
    let store = dir.join("tokens.json");
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters/ureq/tests/data/ec-test-key.pem");
    let seed = issuer.login();
    let base = ["get", &issuer.api_url("signed"), "--token-url", &issuer.token_url()];
    let output = reauth()
        .args(base)
        .args(["--store", store.to_str().unwrap(), "--client-id", "cli"])
        .args(["--private-key", key, "--key-id", "k1", "--refresh-token-env", "SEED"])
        .env("SEED", &seed.refresh_token)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(issuer.counters().refresh_successes, 1);
    let not_a_key = dir.join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let output = reauth()
        .args(base)
        .args(["--store", store.to_str().unwrap(), "--private-key", not_a_key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not-a-key.pem") && stderr.contains("key"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
