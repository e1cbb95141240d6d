#!/usr/bin/env bash
# bench/delivery.sh — builds the release webhooks-server and bench/delivery, then runs
# delivery-bench: end-to-end webhook delivery throughput and latency against a verifying
# HTTPS receiver on 127.0.0.1, and the receiver's ceiling. See bench/README.md.
#
#   bench/delivery.sh
#   EVENTS=50000 WEBHOOKS=4 bench/delivery.sh
#
# Environment (all optional; read by delivery-bench):
#   EVENTS=20000 PUBLISHERS=32 WEBHOOKS=1 RATE=1000 RATE_SECS=10 DELIVERY_CONCURRENCY=64
#   RETRY_SCHEDULE=200ms,1s,2s DRAIN_TIMEOUT_SECS=120 WARMUP_EVENTS=200
#   TARPITS=0 TARPIT_PORTS=1 TARPIT_EVENTS=20 PER_HOST=[server default] (see bench/README.md)
#   FANOUT_WEBHOOKS=20 FANOUT_OWNERS=4 FANOUT_EVENTS=200 FANOUT_RATE=20 FANOUT_BURST=1000
#                         (e) one shift event fanned out to facility webhooks (0 webhooks: skipped)
#   RESULTS_FILE=path [bench/results/delivery-<date>.md]
#   WEBHOOKS_SERVER=path  server binary [target/release/webhooks-server, built here]
#   SKIP_BUILD=1          do not run cargo build first
#
# Exit status: 0 clean run, 2 the run finished but saw problems (see the report), 1 error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SERVER_BIN=${WEBHOOKS_SERVER:-$ROOT/target/release/webhooks-server}
BENCH_BIN=$HERE/delivery/target/release/delivery-bench

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p webhooks-server)
    cargo build --release --manifest-path "$HERE/delivery/Cargo.toml"
fi
[[ -x $SERVER_BIN ]] || { echo "delivery.sh: no server binary at $SERVER_BIN" >&2; exit 1; }

# Which server is measured: the work tree's revision, the binary's hash and build time.
BENCH_REV="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), sha256 $(sha256sum "$SERVER_BIN" | cut -c1-12), built $(date -r "$SERVER_BIN" '+%F %H:%M')"
export BENCH_REV

# delivery-bench starts and stops the server itself (kill_on_drop as a last resort); this
# trap covers an interrupted run.
BENCH_PID=
cleanup() {
    if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); server $SERVER_BIN ($BENCH_REV)"
"$BENCH_BIN" "$SERVER_BIN" &
BENCH_PID=$!
status=0
wait "$BENCH_PID" || status=$?
BENCH_PID=
exit "$status"
