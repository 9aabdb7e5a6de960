//! `reauth issuer`: the mock issuer on its own, for your own tests. It serves the token endpoint
//! (`POST /oauth/token`, the refresh grant with rotation), a classic endpoint (`POST
//! /auth/refresh`), a protected API (`GET /api/...`) that answers an expired token with 401 (or
//! HTTP 200 `{"code":409}`), the device authorization grant (`POST
//! /oauth/device_authorization`, approved by the issuer itself at the Nth poll), and the
//! authorization code grant with PKCE (`GET /oauth/authorize`, answered at once with a code for
//! a loopback redirect URI, or with `access_denied` under `--authorize deny`), on 127.0.0.1
//! until it is stopped. It prints its URLs and, as a token response on one line of JSON, the
//! tokens of a login that a client under test can start from; `--logins N` prints more (one per
//! session). Faults can be served from the start.
//!
//! These are a test server's throwaway tokens, printed on purpose; the same server is the
//! library's `reauth_testkit::issuer::MockIssuer`, for Rust tests that start it themselves.

use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use reauth_testkit::issuer::{
    AuthorizeAnswer, DeviceAnswer, ExpiryStyle, Fault, IssuerConfig, MockIssuer,
};

/// Options of `reauth issuer`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Port on 127.0.0.1 (0: a free one, printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Lifetime of every access token, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    token_lifetime: u64,
    /// Hand back the same refresh token on every refresh instead of rotating it.
    #[arg(long)]
    no_rotation: bool,
    /// Revoke the whole session when a consumed refresh token is presented again.
    #[arg(long)]
    revoke_on_reuse: bool,
    /// Accept a consumed refresh token again within this many milliseconds of its rotation.
    #[arg(long, default_value_t = 0)]
    reuse_grace: u64,
    /// How an expired access token is answered on /api.
    #[arg(long, value_enum, default_value_t = Expiry::Status401)]
    expiry: Expiry,
    /// Fault served by the token endpoint, to the first `--fault-times` refresh requests.
    #[arg(long, value_enum, default_value_t = FaultKind::None)]
    fault: FaultKind,
    /// How many refresh requests get `--fault`.
    #[arg(long, default_value_t = 1)]
    fault_times: u32,
    /// Logins to print at start, each a session of its own.
    #[arg(long, default_value_t = 1)]
    logins: u32,
    /// Polling interval the device authorization endpoint advertises, in seconds.
    #[arg(long, default_value_t = 5)]
    device_interval: u64,
    /// Approve each device authorization at its Nth poll (there is no user to ask; 0: deny at
    /// the first poll instead).
    #[arg(long, default_value_t = 2)]
    device_approve_after: u32,
    /// How the authorization endpoint answers every valid request at once (there is no login
    /// page): with a code for the loopback redirect, or with `error=access_denied`.
    #[arg(long, value_enum, default_value_t = AuthorizeKind::Approve)]
    authorize: AuthorizeKind,
    /// Serve this many seconds, then stop (0: until killed).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
}

/// How the authorization endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AuthorizeKind {
    /// A code at once, as if the user had logged in and consented.
    Approve,
    /// `error=access_denied`, as if the user had refused.
    Deny,
}

/// How expiry is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Expiry {
    /// HTTP 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
    #[value(name = "401")]
    Status401,
    /// HTTP 200 with `{"code":409}`, the classic home-grown way.
    #[value(name = "body-409")]
    Body409,
}

/// Faults the token endpoint can serve from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FaultKind {
    None,
    #[value(name = "503")]
    Unavailable,
    #[value(name = "429")]
    TooManyRequests,
    Hang,
    Malformed,
    InvalidGrant,
    InvalidClient,
    Reset,
    Close,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let config = IssuerConfig {
        token_lifetime: Duration::from_millis(args.token_lifetime),
        rotation: !args.no_rotation,
        revoke_on_reuse: args.revoke_on_reuse,
        reuse_grace: Duration::from_millis(args.reuse_grace),
        expiry_style: match args.expiry {
            Expiry::Status401 => ExpiryStyle::Status401,
            Expiry::Body409 => ExpiryStyle::Classic409,
        },
        device_interval: Duration::from_secs(args.device_interval),
        device_answer: match args.device_approve_after {
            0 => DeviceAnswer::DenyAfter(1),
            n => DeviceAnswer::ApproveAfter(n),
        },
        authorize_answer: match args.authorize {
            AuthorizeKind::Approve => AuthorizeAnswer::Approve,
            AuthorizeKind::Deny => AuthorizeAnswer::Deny,
        },
        ..IssuerConfig::default()
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let issuer = match MockIssuer::start_at(addr, config) {
        Ok(issuer) => issuer,
        Err(e) => {
            eprintln!("reauth issuer: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let times = args.fault_times;
    let fault = match args.fault {
        FaultKind::None => None,
        FaultKind::Unavailable => Some(Fault::ServiceUnavailable { times }),
        FaultKind::TooManyRequests => Some(Fault::TooManyRequests { times, retry_after_secs: 1 }),
        FaultKind::Hang => Some(Fault::Hang { times, duration: Duration::from_secs(60) }),
        FaultKind::Malformed => Some(Fault::MalformedJson { times }),
        FaultKind::InvalidGrant => Some(Fault::InvalidGrant { times }),
        FaultKind::InvalidClient => Some(Fault::InvalidClient { times }),
        FaultKind::Reset => Some(Fault::ResetMidBody { times }),
        FaultKind::Close => Some(Fault::CloseBeforeAnswer { times }),
    };
    if let Some(fault) = fault {
        issuer.inject(fault);
    }
    println!("reauth issuer: listening on {}", issuer.base_url());
    println!("  token endpoint   {}", issuer.token_url());
    println!("  classic refresh  {}", issuer.classic_refresh_url());
    println!("  device login     {}", issuer.device_authorization_url());
    println!("  authorize        {}", issuer.authorization_url());
    println!("  protected API    {}", issuer.api_url("anything"));
    for _ in 0..args.logins {
        let login = issuer.login();
        println!(
            "login {{\"access_token\":\"{}\",\"token_type\":\"Bearer\",\"expires_in\":{},\
             \"refresh_token\":\"{}\"}}",
            login.access_token,
            login.expires_in.as_secs().max(1),
            login.refresh_token
        );
    }
    let _ = std::io::stdout().flush();
    if args.seconds == 0 {
        loop {
            std::thread::park();
        }
    }
    std::thread::sleep(Duration::from_secs(args.seconds));
    let c = issuer.counters();
    println!(
        "reauth issuer: stopped; {} refresh calls, {} successes, {} reuse attempts, {} API requests \
         answered 200, {} answered expired",
        c.refresh_calls, c.refresh_successes, c.reuse_attempts, c.api_ok, c.api_unauthorized
    );
    ExitCode::SUCCESS
}
