#!/usr/bin/env bash
# bench/soak.sh — builds the release webhooks-server and bench/delivery, then runs
# `delivery-bench soak`: DURATION of mixed API load (creates, gets, updates, deletes, lists, log
# searches, publishes) against one server, with deliveries to local HTTPS receivers of which
# some fail (500, first attempt only, hang, no TLS, refused); samples the server's RSS; after the
# load, lets the retry schedule run out and reconciles every delivery through the log API, the
# database and the receiver. See bench/README.md.
#
#   bench/soak.sh                      # 10 minutes at 200 requests/s, SQLite
#   DURATION=60 bench/soak.sh          # a short run
#   POSTGRES=1 bench/soak.sh           # on a fresh PostgreSQL database (PG_URL), dropped after
#
# Environment (all optional; read by delivery-bench soak unless said):
#   DURATION=600 (seconds, or 10m)  RATE=200 (requests/s)  SAMPLE_SECS=10  USERS=4
#   CHURN_USERS=4  CHURN_POOL=40  RETRY_SCHEDULE=1s,2s,4s  DELIVERY_TIMEOUT=2s
#   DELIVERY_CONCURRENCY=(server default)  SERVER_ARGS="--flag value …"  DRAIN_TIMEOUT_SECS=300
#   IN_FLIGHT=256  RSS_TOLERANCE_PCT=10  RSS_SLACK_MB=2  SEED=1
#   RESULTS_FILE=path [bench/results/soak-<date>.md]
#   WEBHOOKS_DATABASE_URL=postgres://…  run on that PostgreSQL database (created if missing)
#   POSTGRES=1, PG_URL=postgres://root@127.0.0.1:5432   (this script) a fresh database, dropped at exit
#   WEBHOOKS_SERVER=path  server binary [target/release/webhooks-server, built here]
#   SKIP_BUILD=1          do not run cargo build first
#
# Exit status: 0 clean run (RSS levelled off, every delivery accounted for, every answer as
# expected), 2 the run finished but saw problems (see the report), 1 error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SERVER_BIN=${WEBHOOKS_SERVER:-$ROOT/target/release/webhooks-server}
BENCH_BIN=$HERE/delivery/target/release/delivery-bench
PG_URL=${PG_URL:-postgres://root@127.0.0.1:5432}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p webhooks-server)
    cargo build --release --manifest-path "$HERE/delivery/Cargo.toml"
fi
[[ -x $SERVER_BIN ]] || { echo "soak.sh: no server binary at $SERVER_BIN" >&2; exit 1; }
command -v sqlite3 >/dev/null || echo "soak.sh: no sqlite3: pending deliveries will not be counted in the database" >&2

# Which server is measured: the work tree's revision, the binary's hash and build time.
BENCH_REV="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), sha256 $(sha256sum "$SERVER_BIN" | cut -c1-12), built $(date -r "$SERVER_BIN" '+%F %H:%M')"
export BENCH_REV
# A per-client rate limit would answer most of this load 429; a server without the setting
# ignores the variable.
export WEBHOOKS_RATE_LIMIT=0

DB=
if [[ ${POSTGRES:-0} == 1 ]]; then
    command -v psql >/dev/null || { echo "soak.sh: POSTGRES=1 needs psql" >&2; exit 1; }
    DB=webhooks_soak_$$
    export WEBHOOKS_DATABASE_URL=$PG_URL/$DB
fi

# delivery-bench starts and stops the server itself (kill_on_drop as a last resort); this
# trap covers an interrupted run and drops the PostgreSQL database.
BENCH_PID=
cleanup() {
    if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    if [[ -n $DB ]]; then
        psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); server $SERVER_BIN ($BENCH_REV)"
"$BENCH_BIN" soak "$SERVER_BIN" &
BENCH_PID=$!
status=0
wait "$BENCH_PID" || status=$?
BENCH_PID=
exit "$status"
