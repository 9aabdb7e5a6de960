#!/usr/bin/env bash
# Instructions per loopback GET (valid token) through plain ureq, reauth-ureq and the naive client,
# counted by callgrind, so the comparison does not depend on the machine's load. The baselines
# bench binary sends N sequential GETs through one client (BASELINES_ONLY, BASELINES_REQUESTS);
# each client runs at two counts and the difference divided by the extra requests removes start-up
# cost. The counts include the in-process mock issuer's share of each request, which is the same
# for every client, so the differences between rows are what each client costs.
# Usage: bash adapters/ureq/benches/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
bin=$(cargo bench -q -p reauth-ureq --bench baselines --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*baselines[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the baselines bench"; exit 1; }

count() { # client, requests: prints the total instructions of one run
    BASELINES_ONLY=$1 BASELINES_REQUESTS=$2 \
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

small=500 large=2500
declare -A per
for client in plain reauth naive; do
    a=$(count "$client" "$small")
    b=$(count "$client" "$large")
    per[$client]=$(( (b - a) / (large - small) ))
done
echo "| client | instructions per GET (issuer included) | vs plain ureq |"
echo "|---|---:|---:|"
for client in plain reauth naive; do
    printf '| %s | %d | %+d |\n' "$client" "${per[$client]}" "$(( per[$client] - per[plain] ))"
done
