//! Replays every committed fuzz corpus input (and every crash artifact, when present) through the
//! fuzz target bodies, then runs a deterministic random smoke loop, so stable CI covers what the
//! fuzzers found without needing libFuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use reauth_testkit::fuzz;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in [root.join("corpus").join(target), root.join("artifacts").join(target)] {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8]), minimum: usize) {
    let files = inputs(target);
    assert!(files.len() >= minimum, "{target}: only {} corpus files", files.len());
    for path in files {
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        body(&data);
    }
}

/// xorshift64*: deterministic inputs without a dependency.
fn random_inputs(seed: u64, count: usize, max_len: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..count).map(move |_| {
        let len = (next() as usize) % max_len;
        (0..len).map(|_| next() as u8).collect()
    })
}

#[test]
fn token_response_corpus_replays_clean() {
    replay("token_response", fuzz::token_response, 10);
}

#[test]
fn coordinator_corpus_replays_clean() {
    replay("coordinator", fuzz::coordinator, 5);
}

#[test]
fn coordinator_survives_random_input_sequences() {
    for data in random_inputs(0x00C0_FFEE, 3_000, 400) {
        fuzz::coordinator(&data);
    }
}

#[test]
fn token_response_survives_mutated_responses() {
    let seed: &[u8] = br#"{"access_token":"a\u0041\/b","token_type":"Bearer","expires_in":"60","refresh_token":"r","x":[1,{"y":null}]}"#;
    for noise in random_inputs(0xBEEF, 3_000, 8) {
        let mut data = seed.to_vec();
        for pair in noise.chunks(2) {
            if let [at, byte] = *pair {
                let i = usize::from(at) % data.len();
                data[i] = byte;
            }
        }
        fuzz::token_response(&data);
        fuzz::token_response(
            &data[..usize::from(noise.first().copied().unwrap_or(0)) % data.len()],
        );
    }
}
