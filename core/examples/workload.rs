//! The core's two workloads as a plain program, for instruction counting under callgrind (see
//! `core/benches/instructions.sh`): `workload hot ITERATIONS` runs the hot path (a request with a
//! valid token, then its accepted response) ITERATIONS times; `workload storm N ROUNDS` parks `N`
//! requests behind an expired token, refreshes once and drains every replay, ROUNDS times.

use core::hint::black_box;

use reauth_core::{
    Action, Admission, Config, Coordinator, Duration, Instant, Outcome, RequestId, Verdict,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok()).unwrap_or(1_000);
    match args.get(1).map(String::as_str) {
        Some("hot") => hot(number(2)),
        Some("storm") => match number(2) {
            8 => storm::<8>(number(3)),
            64 => storm::<64>(number(3)),
            512 => storm::<512>(number(3)),
            1024 => storm::<1024>(number(3)),
            other => eprintln!("storm size {other} not built in (8, 64, 512, 1024)"),
        },
        _ => eprintln!("usage: workload hot ITERATIONS | workload storm N ROUNDS"),
    }
}

fn hot(iterations: u64) {
    let mut auth = Coordinator::<64>::new(Config::DEFAULT);
    let _ = auth.handle_login(Instant::ZERO, Some(Duration::from_secs(3_600)));
    for i in 0..iterations {
        let now = Instant::from_millis(i / 1_000);
        let id = RequestId(i as u32);
        if let Ok(Admission::Send(ticket)) = auth.handle_request(now, black_box(id)) {
            let outcome = auth.handle_response(now, ticket, black_box(Verdict::Accepted));
            assert_eq!(outcome, Outcome::Done);
        }
    }
}

fn storm<const N: usize>(rounds: u64) {
    let mut auth = Coordinator::<N>::new(Config::DEFAULT);
    let mut id = 0u32;
    for round in 0..rounds {
        let now = Instant::from_millis(round);
        auth.handle_restore(now);
        for _ in 0..N {
            id = id.wrapping_add(1);
            let _ = black_box(auth.handle_request(now, RequestId(id)));
        }
        let mut released = 0;
        while let Some(action) = auth.poll_action() {
            match action {
                Action::Refresh(r) => {
                    let _ = auth.handle_refresh_success(now, r, Some(Duration::from_secs(3_600)));
                }
                Action::Send(ticket) => released += black_box(ticket).replays as usize + 1,
                Action::Reject(r) => panic!("{r}"),
            }
        }
        assert_eq!(released, N);
    }
}
