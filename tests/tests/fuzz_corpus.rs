//! Replays every committed fuzz corpus input (and every crash artifact, when present) through the
//! fuzz target bodies, then runs a deterministic random smoke loop, so stable CI covers what the
//! fuzzers found without needing libFuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use reauth_testkit::fuzz;

// The reauth-ureq targets' bodies: the same file the fuzz targets compile (see its docs).
#[path = "../../fuzz/ureq_bodies.rs"]
mod ureq_bodies;

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

#[test]
fn http_response_corpus_replays_clean() {
    replay("http_response", fuzz::http_response, 20);
}

#[test]
fn http_response_seeds_read_as_expected_at_every_split() {
    for &(name, wire, expected) in fuzz::HTTP_RESPONSE_SEEDS {
        for sizes in [&[][..], &[1], &[2], &[3, 1], &[7], &[13, 0, 1]] {
            fuzz::http_response(&fuzz::http_response_input(2048, false, sizes, wire));
        }
        let outcome = fuzz::read_http_response(wire, 2048, false);
        assert_eq!(outcome.as_ref().map(|(s, b)| (*s, &b[..])).map_err(|e| *e), expected, "{name}");
    }
}

#[test]
fn http_response_survives_mutated_responses_split_anywhere() {
    // Bytes that matter to the reader, so that mutations hit framing rather than noise.
    let alphabet = b"0123456789abcdefHTP/. \r\n:;,chunkedContent-LengthTransfer-Encoding";
    let mut noise = random_inputs(0x5EED_F477, 4_000, 24);
    for round in 0..4_000 {
        let (_, seed, _) = fuzz::HTTP_RESPONSE_SEEDS[round % fuzz::HTTP_RESPONSE_SEEDS.len()];
        let mut wire = seed.to_vec();
        let noise = noise.next().unwrap_or_default();
        let (config, edits) = noise.split_at(noise.len().min(6));
        for edit in edits.chunks(3) {
            let [op, at, byte] = *edit else { continue };
            let at = usize::from(at) * wire.len() / 256;
            let byte = alphabet[usize::from(byte) % alphabet.len()];
            match op % 3 {
                0 if at < wire.len() => wire[at] = byte,
                1 => wire.insert(at, byte),
                _ if at < wire.len() => {
                    wire.remove(at);
                }
                _ => {}
            }
        }
        let byte = |i: usize| config.get(i).copied().unwrap_or(0);
        // Buffers from a few bytes to a little more than the response, split anywhere.
        let cap = 1 + usize::from(byte(0)) * (wire.len() + 16) / 255;
        let sizes = [byte(1) % 9, byte(2) % 17, byte(3)];
        fuzz::http_response(&fuzz::http_response_input(cap, byte(4) % 8 == 0, &sizes, &wire));
    }
}

/// Runs the seed variants of the `http_response` fuzz target (each response whole, split into
/// small pieces, in a buffer too small for it, and as the answer to a HEAD) through its body.
/// With `WRITE_FUZZ_SEEDS=1` it also writes them into `fuzz/corpus/http_response` (after
/// changing the seeds; then fuzz and minimise as usual).
#[test]
fn http_response_seed_variants_replay_clean() {
    let write = std::env::var_os("WRITE_FUZZ_SEEDS").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/http_response");
    for &(name, wire, _) in fuzz::HTTP_RESPONSE_SEEDS {
        let variants = [
            ("", fuzz::http_response_input(2048, false, &[], wire)),
            ("-split", fuzz::http_response_input(2048, false, &[1, 3, 0, 7], wire)),
            ("-small", fuzz::http_response_input(wire.len() / 2, false, &[5], wire)),
            ("-head", fuzz::http_response_input(2048, true, &[2], wire)),
        ];
        for (suffix, data) in variants {
            fuzz::http_response(&data);
            if write {
                fs::create_dir_all(&dir).unwrap();
                fs::write(dir.join(format!("seed-{name}{suffix}")), data).unwrap();
            }
        }
    }
}

#[test]
fn device_corpus_replays_clean() {
    replay("device", fuzz::device, 8);
}

#[test]
fn device_survives_random_and_mutated_inputs() {
    for data in random_inputs(0x00DE_71CE, 3_000, 64) {
        fuzz::device(&data);
    }
    let seed: &[u8] = br#"{"device_code":"d\u0041","user_code":"WDJB-MJHT","verification_uri":"https://e.com/d","verification_uri_complete":null,"expires_in":"600","interval":5}"#;
    for noise in random_inputs(0xC0DE, 3_000, 8) {
        let mut data = seed.to_vec();
        for pair in noise.chunks(2) {
            if let [at, byte] = *pair {
                let i = usize::from(at) % data.len();
                data[i] = byte;
            }
        }
        fuzz::device(&data);
    }
}

#[test]
fn redirect_corpus_replays_clean() {
    replay("redirect", ureq_bodies::redirect, 10);
}

#[test]
fn redirect_survives_mutated_requests() {
    let state = b"Zq3vN0c-9kX_4wYtP2mRfH7sLbE1aJdGuKiOeT5yW8x";
    let mut seed = vec![43];
    seed.extend_from_slice(state);
    seed.extend_from_slice(b"GET /callback?code=a%2Fb+c&error_description=%3C&state=");
    seed.extend_from_slice(state);
    seed.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let alphabet = b"%+&=?/ 0aFcodestaterror_descriptionGET\r\n";
    for noise in random_inputs(0x4ED1_4EC7, 3_000, 12) {
        let mut data = seed.clone();
        for pair in noise.chunks(2) {
            if let [at, byte] = *pair {
                let i = 1 + usize::from(at) * (data.len() - 1) / 256;
                data[i] = alphabet[usize::from(byte) % alphabet.len()];
            }
        }
        ureq_bodies::redirect(&data);
    }
}

#[test]
fn discovery_corpus_replays_clean() {
    replay("discovery", ureq_bodies::discovery, 10);
}

#[test]
fn discovery_survives_random_inputs() {
    for data in random_inputs(0xD15C_0FE7, 3_000, 200) {
        ureq_bodies::discovery(&data);
    }
}
