#!/usr/bin/env bash
# bench/postgres.sh — create throughput (wrk) on SQLite, on PostgreSQL with one replica, and on
# PostgreSQL with two replicas sharing one database (wrk drives both at once, half the
# connections each), in one run; then end-to-end delivery (bench/delivery.sh's delivery-bench)
# on SQLite, on PostgreSQL with one replica and with two (events published alternately to both,
# both workers claiming from the one database). Only 127.0.0.1 is contacted.
#
#   bench/postgres.sh
#   PG_URL=postgres://root@127.0.0.1:5432 DURATION=10s CONNECTIONS=32 bench/postgres.sh
#
# Each PostgreSQL configuration gets a fresh database (webhooks_bench_<pid>_<n>), dropped at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PG_URL=${PG_URL:-postgres://root@127.0.0.1:5432}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
EVENTS=${EVENTS:-20000}
BIN=${WEBHOOKS_SERVER:-$ROOT/target/release/webhooks-server}
RESULTS_FILE=${RESULTS_FILE:-$ROOT/bench/results/postgres-$(date +%Y-%m-%d-%H%M).md}
LUA=$ROOT/bench/wrk/request.lua
command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release -p webhooks-server

WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for db in "${DBS[@]}"; do psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "postgres.sh: $*" >&2; exit 1; }

# Both replicas must accept each other's tokens and open each other's sealed secrets.
JWT_SECRET=$(head -c 32 /dev/urandom | base64)
SECRETS_KEY=$(head -c 32 /dev/urandom | base64)

# new_db N — sets DB_URL to a fresh database's URL (a function, not $(…): DBS must be ours).
new_db() {
    local db="webhooks_bench_$$_$1"
    DBS+=("$db")
    DB_URL="$PG_URL/$db"
}

# start NAME DATABASE_URL — a server without a worker nor a rate limit (wrk is one client);
# sets ADDR.
start() {
    local name=$1 url=$2
    "$BIN" --bind 127.0.0.1:0 --data-dir "$WORK/$name" --database-url "$url" --jwt-secret "$JWT_SECRET" \
        --secrets-key "$SECRETS_KEY" --no-worker --rate-limit 0 serve >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        if head -n1 "$WORK/$name.out" | grep -q '^listening on http://'; then
            ADDR=$(head -n1 "$WORK/$name.out" | sed 's#^listening on http://##')
            return 0
        fi
        sleep 0.1
    done
    cat "$WORK/$name.log" >&2
    die "$name did not start"
}

# shellcheck source=bench/tokens.sh
source "$ROOT/bench/tokens.sh"
# Each configuration has a database of its own; two replicas share one, each driven by its own wrk.
OWNERS=$(create_owners 2s "$DURATION" 2s "$DURATION")
echo "minting $OWNERS tokens for the creates (bench-create-1 …)"
mint_tokens "$WORK/tokens" "$OWNERS" bench-create \
    "$BIN" --data-dir "$WORK/token" --jwt-secret "$JWT_SECRET" token --client-id bench --ttl 2h
BODY='{"url":"https://example.com/webhook","events":["facility.creation.accepted"]}'

# wrk_create URL CONNECTIONS OUT — creates for DURATION after a short warm-up.
wrk_create() {
    WRK_METHOD=POST WRK_BODY=$BODY WRK_TOKENS=$WORK/tokens wrk -t 1 -c "$2" -d 2s -s "$LUA" "$1" >/dev/null
    WRK_METHOD=POST WRK_BODY=$BODY WRK_TOKENS=$WORK/tokens wrk -t "$THREADS" -c "$2" -d "$DURATION" --latency -s "$LUA" "$1" >"$3"
}
field() { grep '^RESULT' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

declare -A RPS P99
run_one() { # LABEL URL...
    local label=$1
    shift
    local per=$((CONNECTIONS / $#)) i=0 out=() jobs=()
    for url in "$@"; do
        wrk_create "$url/api/v2/public/webhooks/user" "$per" "$WORK/$label-$i.wrk" &
        jobs+=($!)
        out+=("$WORK/$label-$i.wrk")
        i=$((i + 1))
    done
    # Only the wrk runs: the servers are background jobs too.
    for job in "${jobs[@]}"; do wait "$job"; done
    local rps=0 p99=0
    for f in "${out[@]}"; do
        rps=$(echo "$rps + $(field "$f" rps)" | bc)
        p99=$(echo "if ($(field "$f" p99_ms) > $p99) $(field "$f" p99_ms) else $p99" | bc)
        [[ $(field "$f" non2xx) == 0 ]] || die "$label: non-2xx answers in $f"
    done
    RPS[$label]=$rps
    P99[$label]=$p99
    echo "$label: create $rps req/s, p99 $p99 ms"
}

start sqlite "sqlite://$WORK/sqlite/webhooks.db"
run_one sqlite "http://$ADDR"
new_db 1
start pg1 "$DB_URL"
run_one postgres-1 "http://$ADDR"
new_db 2
start pg2a "$DB_URL"
A=$ADDR
start pg2b "$DB_URL"
run_one postgres-2 "http://$A" "http://$ADDR"
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()

# End-to-end delivery (delivery-bench starts its own servers and receiver).
deliveries() { # LABEL REPLICAS [DATABASE_URL]
    local file=$WORK/delivery-$1.md
    if [[ -n ${3:-} ]]; then
        WEBHOOKS_DATABASE_URL=$3 REPLICAS=$2 EVENTS=$EVENTS DRAIN=0 RESULTS_FILE=$file SKIP_BUILD=1 bash bench/delivery.sh >"$WORK/delivery-$1.log" 2>&1 || true
    else
        EVENTS=$EVENTS DRAIN=0 RESULTS_FILE=$file SKIP_BUILD=1 bash bench/delivery.sh >"$WORK/delivery-$1.log" 2>&1 || true
    fi
    [[ -s $file ]] || { tail -20 "$WORK/delivery-$1.log" >&2; die "delivery-bench ($1) wrote no report"; }
    cp "$file" "${RESULTS_FILE%.md}-delivery-$1.md"
    local rate clean
    rate=$(grep -m1 '^| (a) end-to-end' "$file" | cut -d'|' -f3 | sed 's/^ *//; s/ *$//')
    clean=$(grep -q 'verdict on the run itself: clean' "$file" && echo clean || echo "PROBLEMS, see the report")
    echo "$rate; $clean"
}
D_SQLITE=$(deliveries sqlite 1)
new_db 3
D_PG=$(deliveries postgres-1 1 "$DB_URL")
new_db 4
D_PG2=$(deliveries postgres-2 2 "$DB_URL")

{
    echo "# postgres.sh — $(date '+%Y-%m-%d %H:%M')"
    echo
    echo "server: $BIN ($(git rev-parse --short HEAD)); wrk -t $THREADS, $CONNECTIONS connections in all, $DURATION; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| configuration | create req/s | create p99 ms | delivered + verified /s ($EVENTS events; run verdict) |"
    echo "|---|---|---|---|"
    echo "| SQLite (embedded) | ${RPS[sqlite]} | ${P99[sqlite]} | $D_SQLITE |"
    echo "| PostgreSQL, one replica | ${RPS[postgres-1]} | ${P99[postgres-1]} | $D_PG |"
    echo "| PostgreSQL, two replicas on one database | ${RPS[postgres-2]} (sum of both) | ${P99[postgres-2]} (worst) | $D_PG2 |"
    echo
    echo "Each delivery run's full report: $(basename "${RESULTS_FILE%.md}")-delivery-{sqlite,postgres-1,postgres-2}.md"
} | tee "$RESULTS_FILE"
