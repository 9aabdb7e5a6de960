#!/usr/bin/env bash
# Worst work of one `Client::poll` against hostile servers, in instructions counted by callgrind
# (independent of machine load). For each scenario of `examples/hostile_poll.rs` it measures
# poll number K alone (callgrind collects only inside `measured_poll`) for several K and prints
# the largest, with what the stack delivered by then. The count includes the in-memory stack's
# own work of producing the bytes (about 10 instructions a byte).
# Usage: bash adapters/nal/benches/poll_work.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
cargo build -q --release -p reauth-nal --example hostile_poll
bin=target/release/examples/hostile_poll

echo "| scenario | worst poll (instructions) | at poll | what that poll ended with |"
echo "|---|---:|---:|---|"
for scenario in continue-flood head-trickle chunk-flood trailer-flood body-trickle; do
    worst=0 at=0 said=""
    for k in 1 2 3 5 10 50 100 200 250 260; do
        out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            --toggle-collect='*measured_poll*' "$bin" "$scenario" "$k" 2>&1)
        grep -q 'ended before' <<<"$out" && break
        n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out")
        if (( n > worst )); then
            worst=$n at=$k said=$(grep -o 'poll [0-9]*: .*' <<<"$out" | sed 's/^poll [0-9]*: //')
        fi
    done
    printf '| %s | %d | %d | %s |\n' "$scenario" "$worst" "$at" "$said"
done
