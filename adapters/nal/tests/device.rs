//! The device authorization grant (RFC 8628) over `std-embedded-nal` against the loopback mock
//! issuer, in a single-threaded poll loop bounded in rounds and wall time: approved (then the
//! client logs in from the token response and its requests go through), denied, `slow_down`.

mod common;

use core::time::Duration as StdDuration;
use std::time::Instant as StdInstant;

use reauth_core::oauth::RefreshParams;
use reauth_core::{Instant, RequestId};
use reauth_nal::{DeviceEvent, DeviceFailure, DeviceLogin, Endpoint, Event, Request, Timeouts};
use reauth_testkit::issuer::{DeviceAnswer, IssuerConfig, MockIssuer};
use std_embedded_nal::Stack;

use crate::common::{Flash, StackClient, config, oauth};

type Login<'a> = DeviceLogin<'a, Stack, 512, 2048>;
type NetError = <Stack as reauth_nal::Transport>::Error;

fn issuer(answer: DeviceAnswer, enforced: Option<StdDuration>) -> MockIssuer {
    MockIssuer::start(IssuerConfig {
        device_interval: StdDuration::ZERO,
        device_enforced_interval: enforced,
        device_answer: answer,
        ..IssuerConfig::default()
    })
    .unwrap()
}

fn login<'a>(issuer: &MockIssuer, host: &'a str) -> Login<'a> {
    let server = Endpoint { addr: issuer.addr(), host };
    let params = RefreshParams { client_id: Some("device"), ..RefreshParams::default() };
    DeviceLogin::new(server, "/oauth/device_authorization", "/oauth/token", params)
}

/// Polls `login` until it has an event other than `Show` (recording whether `Show` came),
/// within 10 s.
fn run(login: &mut Login<'_>, net: &mut Stack, start: StdInstant) -> (bool, DeviceEvent<NetError>) {
    let deadline = StdInstant::now() + StdDuration::from_secs(10);
    let mut shown = false;
    for _ in 0..1_000_000 {
        assert!(StdInstant::now() < deadline, "device login timed out");
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
        match login.poll(net, now, &Timeouts::DEFAULT) {
            Some(DeviceEvent::Show) => {
                assert!(!shown, "shown once");
                shown = true;
                assert_eq!(login.user_code().len(), 9);
                assert!(login.verification_uri().ends_with("/device"));
            }
            Some(event) => return (shown, event),
            None => std::thread::sleep(StdDuration::from_millis(1)),
        }
    }
    panic!("poll loop ran 1e6 rounds");
}

#[test]
fn approved_device_login_logs_the_client_in() {
    let issuer = issuer(DeviceAnswer::ApproveAfter(3), None);
    let host = "127.0.0.1";
    let mut net = Stack;
    let start = StdInstant::now();
    let mut device = login(&issuer, host);
    device.start().unwrap();
    let (shown, event) = run(&mut device, &mut net, start);
    assert!(shown);
    assert!(matches!(event, DeviceEvent::Approved), "{event:?}");
    let mut client: StackClient<'_, _, 2> =
        reauth_nal::Client::new(config(host, &issuer), oauth(), Flash::default());
    let now = Instant::from_millis(start.elapsed().as_millis() as u64);
    client.login_from_token_response(now, device.token_response().unwrap()).unwrap();
    device.finish(&mut net);
    assert_eq!(device.token_response(), None);
    let id = client.submit(now, &Request::get("/api/after-device-login")).unwrap();
    let mut status = None;
    common::drive(&mut client, start, 1, |_, event| {
        if let Event::Response { id: answered, status: s } = event {
            assert_eq!(*answered, id);
            status = Some(*s);
        }
    });
    assert_eq!(status, Some(200));
    let c = issuer.counters();
    assert_eq!((c.device_polls, c.device_pending, c.device_approvals, c.api_ok), (3, 2, 1, 1));
    let _: RequestId = id;
}

#[test]
fn denied_device_login_fails_and_wipes() {
    let issuer = issuer(DeviceAnswer::DenyAfter(2), None);
    let mut net = Stack;
    let mut device = login(&issuer, "127.0.0.1");
    device.start().unwrap();
    let (shown, event) = run(&mut device, &mut net, StdInstant::now());
    assert!(shown);
    assert!(matches!(event, DeviceEvent::Failed(DeviceFailure::Denied)), "{event:?}");
    assert_eq!(device.token_response(), None);
    assert_eq!(device.poll_at(), None);
    assert!(!format!("{device:?}").contains("dc."));
}

#[test]
fn slow_down_stretches_the_interval() {
    let issuer = issuer(DeviceAnswer::ApproveAfter(3), Some(StdDuration::from_millis(500)));
    let mut net = Stack;
    let mut device = login(&issuer, "127.0.0.1");
    device.start().unwrap();
    let start = StdInstant::now();
    let (_, event) = run(&mut device, &mut net, start);
    assert!(matches!(event, DeviceEvent::Approved), "{event:?}");
    // Poll 2 came at once and was told to slow down: poll 3 waited five seconds.
    assert!(start.elapsed() >= StdDuration::from_secs(5));
    let c = issuer.counters();
    assert_eq!((c.device_polls, c.device_slow_downs), (3, 1));
}

#[test]
fn a_refused_client_fails_at_once() {
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("someone-else".into()),
        ..IssuerConfig::default()
    })
    .unwrap();
    let mut net = Stack;
    let mut device = login(&issuer, "127.0.0.1");
    device.start().unwrap();
    let (shown, event) = run(&mut device, &mut net, StdInstant::now());
    assert!(!shown);
    assert!(matches!(event, DeviceEvent::Failed(DeviceFailure::Refused(401, _))), "{event:?}");
}
