//! `reauth login --device`: the first login of a terminal or a device through the OAuth 2.0
//! device authorization grant (RFC 8628). It shows a user code and where to enter it, as a device
//! would on its display, waits while the user approves it on another device, and writes the
//! tokens into the `FileStore` that `reauth get` then uses.
//!
//! The authorization code flow with PKCE (issue 14 item 2's desktop flow) is not here yet.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reauth_ureq::{Client, DeviceLogin, DevicePrompt, FileStore};
use zeroize::Zeroizing;

/// Options of `reauth login`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Log in with the device authorization grant (RFC 8628): show a code, wait for approval.
    /// The only flow so far, and required.
    #[arg(long)]
    device: bool,
    /// The OAuth2 token endpoint (polled with the device code, and later used to refresh).
    #[arg(long)]
    token_url: String,
    /// The device authorization endpoint.
    #[arg(long)]
    device_url: String,
    /// The file the tokens are written to (created with mode 0600), as `reauth get --store`.
    #[arg(long)]
    store: PathBuf,
    /// `client_id` of this client.
    #[arg(long)]
    client_id: Option<String>,
    /// Name of an environment variable holding the `client_secret` (never a command-line
    /// argument, where other users could read it).
    #[arg(long, value_name = "VAR")]
    client_secret_env: Option<String>,
    /// `scope` asked for.
    #[arg(long)]
    scope: Option<String>,
}

/// Runs the login: the prompt to stdout, errors to stderr.
pub(crate) fn run(args: Args) -> ExitCode {
    if !args.device {
        eprintln!(
            "reauth login: only the device flow is implemented so far; pass --device \
             (the authorization code flow with PKCE is yet to come)"
        );
        return ExitCode::from(2);
    }
    match login(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reauth login: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn login(args: &Args) -> Result<(), Box<dyn core::error::Error>> {
    let mut builder = Client::builder()
        .token_url(&args.token_url)
        .store(FileStore::new(&args.store))
        .user_agent(concat!("reauth/", env!("CARGO_PKG_VERSION")));
    let mut device = DeviceLogin::new(&args.device_url, &args.token_url);
    if let Some(id) = &args.client_id {
        builder = builder.client_id(id);
        device = device.client_id(id);
    }
    if let Some(var) = &args.client_secret_env {
        let secret = Zeroizing::new(
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        );
        builder = builder.client_secret(secret.as_str());
        device = device.client_secret(secret.as_str());
    }
    if let Some(scope) = &args.scope {
        builder = builder.scope(scope);
        device = device.scope(scope);
    }
    let client = builder.build()?;
    client.login_with_device(&device, show)?;
    println!("reauth login: approved; tokens saved to {}", args.store.display());
    Ok(())
}

/// Shows the code the way a device with a small display would.
fn show(prompt: &DevicePrompt) {
    let minutes = prompt.expires_in.as_secs().div_ceil(60);
    println!("+------------------------------------------------+");
    println!("| To sign in, visit                              |");
    println!("|   {:<44} |", prompt.verification_uri);
    println!("| and enter the code                             |");
    println!("|   {:<44} |", prompt.user_code);
    println!("+------------------------------------------------+");
    if let Some(complete) = &prompt.verification_uri_complete {
        println!("or open {complete}");
    }
    println!("The code is valid for {minutes} min. Waiting for approval...");
    let _ = std::io::stdout().flush();
}
