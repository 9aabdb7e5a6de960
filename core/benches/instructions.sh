#!/usr/bin/env bash
# Instructions per operation of the core, counted by callgrind (independent of machine load).
# Each workload runs twice with different iteration counts; the difference divided by the extra
# iterations removes start-up cost. Usage: bash core/benches/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
cargo build -q --release -p reauth-core --example workload
bin=target/release/examples/workload

count() { # prints the total instructions of one run
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

per_op() { # label, ops-per-unit, args for small and large runs (last arg is the unit count)
    local label=$1 per_unit=$2 small=$3 large=$4; shift 4
    local a b
    a=$(count "$@" "$small")
    b=$(count "$@" "$large")
    printf '| %-34s | %10s |\n' "$label" "$(( (b - a) / ((large - small) * per_unit) ))"
}

echo "| workload                           | instr / op |"
echo "|------------------------------------|-----------:|"
per_op "hot path (request + accepted)" 1 10000 110000 hot
for n in 8 64 512 1024; do
    per_op "storm N=$n, per parked request" "$n" $((20000 / n + 10)) $((220000 / n + 10)) storm "$n"
done
