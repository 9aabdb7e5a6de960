//! Micro-benchmarks of the core: the hot path, a storm of `N` parked requests, and parsing a
//! token response with a 1 KiB JWT. `cargo bench -p reauth-core`.

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use reauth_core::oauth::parse_token_response;
use reauth_core::{
    Action, Admission, Config, Coordinator, Duration, Generation, Instant, RequestId, TokenSet,
    Verdict,
};

fn main() {
    divan::main();
}

/// A request with a valid token and its accepted response.
#[divan::bench]
fn hot_path(bencher: Bencher) {
    let mut auth = Coordinator::<64>::new(Config::DEFAULT);
    let _ = auth.handle_login(Instant::ZERO, Some(Duration::from_secs(3_600)));
    let mut id = 0u32;
    bencher.bench_local(|| {
        id = id.wrapping_add(1);
        if let Ok(Admission::Send(ticket)) = auth.handle_request(Instant::ZERO, RequestId(id)) {
            let _ = black_box(auth.handle_response(Instant::ZERO, ticket, Verdict::Accepted));
        }
    });
}

/// Park `N` requests, refresh once, drain every replay; reported per request.
#[divan::bench(consts = [8, 64, 512, 1024])]
fn storm<const N: usize>(bencher: Bencher) {
    let mut auth = Coordinator::<N>::new(Config::DEFAULT);
    let mut id = 0u32;
    bencher.counter(ItemsCount::new(N)).bench_local(|| {
        auth.handle_restore(Instant::ZERO);
        for _ in 0..N {
            id = id.wrapping_add(1);
            let _ = black_box(auth.handle_request(Instant::ZERO, RequestId(id)));
        }
        while let Some(action) = auth.poll_action() {
            if let Action::Refresh(r) = action {
                let _ = auth.handle_refresh_success(Instant::ZERO, r, None);
            } else {
                let _ = black_box(action);
            }
        }
    });
}

/// A typical token response with a 1 KiB JWT access token, parsed and applied.
#[divan::bench]
fn parse_jwt_token_response(bencher: Bencher) {
    let jwt: String =
        "eyJhbGciOiJSUzI1NiJ9.".chars().chain(core::iter::repeat_n('x', 1003)).collect();
    let body = format!(
        r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":3600,"refresh_token":"8xLOxBtZp8","scope":"read write"}}"#
    );
    let mut tokens = TokenSet::<2048, 256>::new();
    bencher.counter(divan::counter::BytesCount::new(body.len())).bench_local(|| {
        let response = parse_token_response(black_box(body.as_bytes())).ok();
        if let Some(response) = response {
            let _ = response.apply(&mut tokens, Generation(2));
        }
    });
}
