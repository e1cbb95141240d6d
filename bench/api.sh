#!/usr/bin/env bash
# bench/api.sh — HTTP throughput of the release webhooks-server against a bare axum route,
# measured with wrk. See bench/README.md for what each number means.
#
#   bench/api.sh                         # 10 s per scenario, 2 wrk threads, 32 connections
#   DURATION=30s CONNECTIONS=64 bench/api.sh
#
# Environment (all optional):
#   DURATION=10s  THREADS=2  CONNECTIONS=32  WARMUP=2s   wrk settings, per scenario
#   RUNS=1                   measured runs per scenario (after one warm-up); the report gives
#                            the median of each figure (3 or more for numbers to compare)
#   RATE_LIMIT=0             the server's --rate-limit [0: off, wrk is one client; a huge value
#                            such as 4000000000 keeps the limiter in the path without refusing]
#   WEBHOOKS_SERVER=path     server binary   [target/release/webhooks-server, built here]
#   SKIP_BUILD=1             do not run cargo build first
#   RESULTS_FILE=path        [bench/results/api-<date>-<time>.md]
#   CREATE_OWNERS=N          owners the create scenarios spread over [250 per second of one]
#
# Only 127.0.0.1 is contacted. Both servers are stopped on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2s}
RUNS=${RUNS:-1}
RATE_LIMIT=${RATE_LIMIT:-0}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SERVER_BIN=${WEBHOOKS_SERVER:-$ROOT/target/release/webhooks-server}
BARE_BIN=$HERE/baseline/target/release/bench-baseline
LUA=$HERE/wrk/request.lua
RESULTS_FILE=${RESULTS_FILE:-$HERE/results/api-$(date +%F-%H%M).md}
CREATE_BODY='{"url":"https://example.com/hook","events":["all"]}'
# (d): a facility webhook naming one facility its owner can access (granted below).
FACILITY=NUR-BENCH
FACILITY_BODY='{"url":"https://example.com/hook","events":["all"],"facilities":["'$FACILITY'"]}'
LIST_SIZE=20

die() { echo "api.sh: $*" >&2; exit 1; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$RUNS'"
# Which server is measured: the work tree's revision, the binary's hash and build time.
binary_id() {
    echo "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), sha256 $(sha256sum "$1" | cut -c1-12), built $(date -r "$1" '+%F %H:%M')"
}
# 1-minute load average, and the share of the last 10 s in which some task waited for a CPU
# (pressure stall information; other work on the machine shows up here).
load1() {
    local psi=""
    [[ -r /proc/pressure/cpu ]] && psi=" (cpu psi $(sed -n 's/^some avg10=\([^ ]*\).*/\1/p' /proc/pressure/cpu)%)"
    echo "$(cut -d' ' -f1 /proc/loadavg)$psi"
}
# CPU seconds: the whole machine's busy time (user, nice, system, irq, softirq, steal), one
# process's (utime + stime), and the children this shell has reaped (wrk), from `times`.
HZ=$(getconf CLK_TCK)
busy_secs() { awk -v hz="$HZ" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
proc_secs() { awk -v hz="$1" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$2/stat"; }
children_secs() { # FILE written by `times >FILE` (a builtin: it must run in this shell)
    tail -n1 "$1" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] } printf "%.2f", t }'
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
command -v curl >/dev/null || (apt-get update && apt-get install -y curl)
command -v jq >/dev/null || (apt-get update && apt-get install -y jq)

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p webhooks-server)
    cargo build --release --manifest-path "$HERE/baseline/Cargo.toml"
fi
[[ -x $SERVER_BIN ]] || die "no server binary at $SERVER_BIN"
[[ -x $BARE_BIN ]] || die "no baseline binary at $BARE_BIN"

WORK=$(mktemp -d /tmp/api-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD… — runs CMD in the background, waits for "listening on http://ADDR" on its
# first stdout line; sets PID and ADDR.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 300); do
        if head -n1 "$WORK/$name.out" | grep -q '^listening on http://'; then
            ADDR=$(head -n1 "$WORK/$name.out" | sed 's#^listening on http://##')
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited at start-up"; }
        sleep 0.1
    done
    die "$name did not print its address within 30 s"
}

# expect STATUS METHOD URL [TOKEN [BODY]] — one request with curl; fails unless STATUS answers.
expect() {
    local want=$1 method=$2 url=$3 token=${4:-} body=${5:-}
    local args=(-s -o "$WORK/last.json" -w '%{http_code}' -X "$method" "$url")
    [[ -n $token ]] && args+=(-H "Authorization: Bearer $token")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data "$body")
    local got
    got=$(curl "${args[@]}")
    [[ $got == "$want" ]] || die "$method $url answered $got, expected $want: $(head -c 300 "$WORK/last.json")"
}

# --- the servers ------------------------------------------------------------------------
DATA=$WORK/data
mkdir -p "$DATA"
token() { "$SERVER_BIN" --data-dir "$DATA" token --client-id bench-client --sub "$1" --ttl 2h | tail -n1; }
CREATE_TOKEN=$(token bench-create)
LIST_TOKEN=$(token bench-list)
# shellcheck source=bench/tokens.sh
source "$HERE/tokens.sh"
# shellcheck disable=SC2046 # one DURATION per measured run
CREATE_OWNERS=$(create_owners "$WARMUP" $(for _ in $(seq 1 "$RUNS"); do echo "$DURATION"; done))
echo "minting $CREATE_OWNERS tokens for the create scenario (bench-create-1 …)"
mint_tokens "$WORK/create-tokens" "$CREATE_OWNERS" bench-create \
    "$SERVER_BIN" --data-dir "$DATA" token --client-id bench-client --ttl 2h

start server "$SERVER_BIN" --data-dir "$DATA" --bind 127.0.0.1:0 --rate-limit "$RATE_LIMIT" serve
SERVER_PID=$PID
SERVER=http://$ADDR
start bare "$BARE_BIN" 127.0.0.1:0
BARE_PID=$PID
BARE=http://$ADDR
WEBHOOKS=$SERVER/api/v2/public/webhooks/user
FACILITY_WEBHOOKS=$SERVER/api/v2/public/webhooks/facility
echo "server pid $SERVER_PID at $SERVER (data $DATA); bare pid $BARE_PID at $BARE"

# --- shape checks (and the "few requests" before the idle RSS reading) --------------------
for _ in $(seq 1 "$LIST_SIZE"); do
    expect 201 POST "$WEBHOOKS" "$LIST_TOKEN" "$CREATE_BODY"
done
expect 200 GET "$WEBHOOKS" "$LIST_TOKEN"
listed=$(jq '.data | length' "$WORK/last.json")
[[ $listed == "$LIST_SIZE" ]] || die "list answered $listed webhooks, expected $LIST_SIZE"
LIST_BYTES=$(wc -c <"$WORK/last.json")
expect 201 POST "$WEBHOOKS" "$CREATE_TOKEN" "$CREATE_BODY"
expect 400 POST "$WEBHOOKS" "$CREATE_TOKEN" '{}'
BAD_ANSWER=$(head -c 300 "$WORK/last.json")
expect 200 GET "$BARE/bare"
expect 200 POST "$BARE/bare" "" "$CREATE_BODY"
sleep 1
IDLE_RSS=$(rss_mb "$SERVER_PID")
BARE_IDLE_RSS=$(rss_mb "$BARE_PID")
echo "idle RSS: server $IDLE_RSS MB, bare $BARE_IDLE_RSS MB; the 400 answer: $BAD_ANSWER"

# --- (d)'s owners: every create owner (and bench-create) may access $FACILITY -------------
# One curl for all of them (PUT /api/v2/internal/users/{userId}/facilities, a token with the
# scope facilities:write), 8 in parallel over keep-alive connections; after the idle RSS reading.
GRANT_TOKEN=$("$SERVER_BIN" --data-dir "$DATA" token --client-id bench-client --sub bench-granter \
    --scope facilities:write --ttl 2h | tail -n1)
{
    for user in bench-create $(seq -f 'bench-create-%g' 1 "$CREATE_OWNERS"); do
        echo "url = \"$SERVER/api/v2/internal/users/$user/facilities\""
        echo 'output = "/dev/null"'
    done
} >"$WORK/grant.curl"
GRANT_STARTED=$(date +%s.%N)
curl -s --parallel --parallel-max 8 -X PUT -H "Authorization: Bearer $GRANT_TOKEN" \
    -H 'Content-Type: application/json' --data '{"facilities":["'$FACILITY'"]}' \
    -w '%{http_code}\n' -K "$WORK/grant.curl" >"$WORK/grant.codes"
GRANTED=$(grep -c '^200$' "$WORK/grant.codes" || true)
[[ $GRANTED == $((CREATE_OWNERS + 1)) ]] ||
    die "granting $FACILITY: $GRANTED of $((CREATE_OWNERS + 1)) PUTs answered 200 ($(sort "$WORK/grant.codes" | uniq -c | tr '\n' ' '))"
echo "granted $FACILITY to $GRANTED users in $(awk -v a="$GRANT_STARTED" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
expect 201 POST "$FACILITY_WEBHOOKS" "$CREATE_TOKEN" "$FACILITY_BODY"
[[ $(jq -c '.data.facilities' "$WORK/last.json") == '["'$FACILITY'"]' ]] ||
    die "the facility create answered facilities $(jq -c '.data.facilities' "$WORK/last.json")"
# bench-list was not granted $FACILITY: the same body is refused (the access check runs).
expect 400 POST "$FACILITY_WEBHOOKS" "$LIST_TOKEN" "$FACILITY_BODY"

# --- load -------------------------------------------------------------------------------
declare -A RPS P50 P99 MAXL REQS NON2XX SOCKERR LOAD OTHER OTHER_MAX SERVER_CPU CPU_US RUN_LOG
# median N… — the middle value (the mean of the two middle ones for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
largest() { printf '%s\n' "$@" | sort -g | tail -n1; }
# measure NAME URL METHOD [BODY [TOKEN [TOKENS_FILE]]] — a warm-up run, then RUNS measured runs;
# each figure reported is the median over the runs (max ms: the largest; counts: the sum).
measure() {
    local name=$1 url=$2 method=$3 body=${4:-} token=${5:-} tokens=${6:-}
    # The process under test: the bare server for the bare rows, the webhooks server otherwise.
    local pid=$SERVER_PID
    [[ $name == bare_* ]] && pid=$BARE_PID
    # wrk runs in the background and is waited for, so that a signal stops the script (and,
    # through the trap, wrk) at once rather than after the run.
    run_wrk() { # DURATION OUTPUT
        export WRK_METHOD=$method WRK_BODY=$body WRK_TOKEN=$token WRK_TOKENS=$tokens
        exec wrk -t "$THREADS" -c "$CONNECTIONS" -d "$1" --latency -s "$LUA" "$url" >"$2"
    }
    run_wrk "$WARMUP" /dev/null &
    PIDS+=("$!")
    wait "$!"
    LOAD[$name]=$(load1)
    local rps=() p50=() p99=() maxl=() other=() cpu=() us=() runlog=()
    local reqs=0 non2xx=0 sockerr=0 run
    for run in $(seq 1 "$RUNS"); do
        echo
        echo "== $name (run $run of $RUNS): $method $url for $DURATION (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        # What else used the CPU meanwhile: the machine's busy time less the server's, the bare
        # server's and wrk's, as a share of all cores over the run.
        local busy0 server0 bare0 tested0 t0 out=$WORK/$name.$run.wrk
        busy0=$(busy_secs) server0=$(proc_secs "$HZ" "$SERVER_PID") bare0=$(proc_secs "$HZ" "$BARE_PID")
        tested0=$(proc_secs "$HZ" "$pid") t0=$(date +%s.%N)
        times >"$WORK/times0"
        run_wrk "$DURATION" "$out" &
        PIDS+=("$!")
        wait "$!"
        times >"$WORK/times1"
        other+=("$(awk -v b0="$busy0" -v b1="$(busy_secs)" -v s0="$server0" -v s1="$(proc_secs "$HZ" "$SERVER_PID")" \
            -v r0="$bare0" -v r1="$(proc_secs "$HZ" "$BARE_PID")" -v w0="$(children_secs "$WORK/times0")" \
            -v w1="$(children_secs "$WORK/times1")" -v t0="$t0" -v t1="$(date +%s.%N)" -v n="$(nproc)" \
            'BEGIN { o = (b1 - b0) - (s1 - s0) - (r1 - r0) - (w1 - w0); if (o < 0) o = 0; printf "%.1f", 100 * o / ((t1 - t0) * n) }')")
        local secs
        secs=$(awk -v a="$tested0" -v b="$(proc_secs "$HZ" "$pid")" 'BEGIN { printf "%.2f", b - a }')
        cat "$out"
        local line
        line=$(grep '^RESULT ' "$out") || die "wrk printed no RESULT line for $name (run $run)"
        field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        local n
        n=$(field requests)
        rps+=("$(field rps)") p50+=("$(field p50_ms)") p99+=("$(field p99_ms)") maxl+=("$(field max_ms)")
        cpu+=("$secs")
        # CPU per request: the process under test's CPU seconds over the run / wrk's count.
        us+=("$(awk -v s="$secs" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", 1e6 * s / n; else print "nan" }')")
        reqs=$((reqs + n))
        non2xx=$((non2xx + $(field non2xx)))
        sockerr=$((sockerr + $(field connect_err) + $(field read_err) + $(field write_err) + $(field timeouts)))
        runlog+=("$(printf '%.0f req/s, %.1f µs, other %.0f%%' "${rps[-1]}" "${us[-1]}" "${other[-1]}")")
        echo "   $name run $run: ${runlog[-1]} (server CPU $secs s over $n requests)"
    done
    RPS[$name]=$(median "${rps[@]}")
    P50[$name]=$(median "${p50[@]}")
    P99[$name]=$(median "${p99[@]}")
    MAXL[$name]=$(largest "${maxl[@]}")
    SERVER_CPU[$name]=$(median "${cpu[@]}")
    CPU_US[$name]=$(median "${us[@]}")
    OTHER[$name]=$(median "${other[@]}")
    OTHER_MAX[$name]=$(largest "${other[@]}")
    REQS[$name]=$reqs
    NON2XX[$name]=$non2xx
    SOCKERR[$name]=$sockerr
    RUN_LOG[$name]=$(printf '%s; ' "${runlog[@]}")
    RUN_LOG[$name]=${RUN_LOG[$name]%; }
}

# The disk: 200 synchronous 4 KiB writes (dd oflag=dsync) next to the database. A durable
# create cannot commit faster than one of these; other work on the machine slows them down.
disk_probe() {
    local secs
    secs=$(dd if=/dev/zero of="$WORK/disk-probe" bs=4k count=200 oflag=dsync 2>&1 | sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p')
    rm -f "$WORK/disk-probe"
    awk -v s="$secs" 'BEGIN { printf "%.2f ms per synchronous 4 KiB write", s * 1000 / 200 }'
}

measure bare_post "$BARE/bare" POST "$CREATE_BODY"
measure bare_get "$BARE/bare" GET
measure bad_400 "$WEBHOOKS" POST '{}' "$CREATE_TOKEN"
measure list_20 "$WEBHOOKS" GET "" "$LIST_TOKEN"
DISK_BEFORE=$(disk_probe)
measure create "$WEBHOOKS" POST "$CREATE_BODY" "" "$WORK/create-tokens"
DISK_AFTER=$(disk_probe)
measure facility_create "$FACILITY_WEBHOOKS" POST "$FACILITY_BODY" "" "$WORK/create-tokens"
DISK_AFTER_D=$(disk_probe)

sleep 1
AFTER_RSS=$(rss_mb "$SERVER_PID")
BARE_AFTER_RSS=$(rss_mb "$BARE_PID")
kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the load; log: $(tail -n 20 "$WORK/server.log")"

# Durability cross-check: every 201 wrk counted must be a row (rows may exceed it: requests
# still in flight when wrk stopped, and the warm-up's).
ROWS="?" FACILITY_ROWS="?"
if command -v sqlite3 >/dev/null; then
    rows() { sqlite3 "file:$DATA/webhooks.db?mode=ro" "SELECT COUNT(*) FROM webhooks WHERE user_id LIKE 'bench-create-%' AND kind = '$1'" 2>/dev/null || echo "?"; }
    ROWS=$(rows user)
    FACILITY_ROWS=$(rows facility)
fi
CREATED_OK=$((REQS[create] - NON2XX[create]))
FACILITY_CREATED_OK=$((REQS[facility_create] - NON2XX[facility_create]))
LOG_WARN=$(grep -c ' WARN ' "$WORK/server.log" || true)
LOG_ERROR=$(grep -c ' ERROR ' "$WORK/server.log" || true)

# --- summary ----------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "ge") ? v >= t : v <= t; print ok ? "PASS" : "FAIL" }'; }
us() { awk -v v="$1" 'BEGIN { printf (v < 10 ? "%.1f µs" : "%.0f µs"), v }'; }
row() { # NAME LABEL BASELINE TARGET% [CPU_TARGET_µs]
    local name=$1 label=$2 base=$3 target=${4:-} cpu_target=${5:-}
    local vs="" check="" per_request cpu_check="" other
    if [[ -n $base ]]; then
        vs="$(ratio "${RPS[$name]}" "${RPS[$base]}")% of ${base}"
    fi
    if [[ -n $base && -n $target ]]; then
        check="≥ ${target}% → $(verdict "$(ratio "${RPS[$name]}" "${RPS[$base]}")" "$target" ge)"
    fi
    per_request=$(us "${CPU_US[$name]}")
    [[ -n $base ]] && per_request+=" (bare $(us "${CPU_US[$base]}"))"
    [[ -n $cpu_target ]] && cpu_check="≤ $cpu_target µs → $(verdict "${CPU_US[$name]}" "$cpu_target" le)"
    other=$(printf '%.0f%%' "${OTHER[$name]}")
    ((RUNS > 1)) && other+=$(printf ' (max %.0f%%)' "${OTHER_MAX[$name]}")
    printf '| %s | %.0f | %s | %s | %s | %s / %s | %s | %s | %.2f s | %s | %s | %s | %s |\n' "$label" "${RPS[$name]}" \
        "${P50[$name]}" "${P99[$name]}" "${MAXL[$name]}" "${NON2XX[$name]}" "${SOCKERR[$name]}" \
        "$vs" "$check" "${SERVER_CPU[$name]}" "$per_request" "$cpu_check" "$other" "${LOAD[$name]}"
}
{
    echo "# api.sh — $(date '+%F %H:%M')"
    echo
    echo "server: $SERVER_BIN ($(binary_id "$SERVER_BIN")), --rate-limit $RATE_LIMIT"
    if ((RUNS > 1)); then
        echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION, $RUNS measured runs after a $WARMUP warm-up per scenario: **median of $RUNS** runs (max ms: the largest; counts: summed over the runs), $(nproc) cores"
    else
        echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION (after a $WARMUP warm-up each), one measured run per scenario (RUNS=1: no median), $(nproc) cores"
    fi
    echo "uptime at the end: $(uptime); io psi: $(head -n1 /proc/pressure/io 2>/dev/null || echo n/a)"
    echo
    echo "server CPU: CPU seconds the server under test (or the bare server) used during the run. µs CPU / request: that"
    echo "CPU time over the requests wrk counted in the run — the figure that survives a noisy shared machine (other work"
    echo "slows every request down but barely changes the CPU each one costs); server rows show the bare route's beside it."
    echo "other processes' CPU: the machine's busy time not used by the server, the bare server or wrk, as a share of all"
    echo "$(nproc) cores — work that competed with the measurement. Load and CPU pressure are read after each warm-up (they include the bench itself)."
    echo
    echo "| scenario | req/s | p50 ms | p99 ms | max ms | non-2xx / socket errors | vs bare | target | server CPU | µs CPU / request | CPU target | other processes' CPU | load (1 min, cpu psi) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    row bare_post "bare axum POST /bare" "" ""
    row bare_get "bare axum GET /bare" "" ""
    row create "(a) create webhook, durable write → 201" bare_post 35 25
    row bad_400 "(b) \`{}\` → 400 validation answer" bare_post 80 10
    row list_20 "(c) list of $LIST_SIZE webhooks → 200 ($LIST_BYTES bytes)" bare_get 50 15
    row facility_create "(d) create facility webhook naming $FACILITY (access checked), durable write → 201" bare_post ""
    echo
    echo "| memory | server | bare | target |"
    echo "|---|---|---|---|"
    echo "| idle RSS (after start-up and $((LIST_SIZE + 5)) requests) | $IDLE_RSS MB | $BARE_IDLE_RSS MB | server ≤ 30 MB → $(verdict "$IDLE_RSS" 30 le) |"
    echo "| RSS after the load | $AFTER_RSS MB | $BARE_AFTER_RSS MB | |"
    echo
    echo "checks:"
    echo "- (b) answers: ${NON2XX[bad_400]} of ${REQS[bad_400]} outside 2xx (all should be: 400)"
    echo "- disk probe before / after (a), after (d): $DISK_BEFORE / $DISK_AFTER, $DISK_AFTER_D"
    echo "- (a) 201 answers counted by wrk: $CREATED_OK (+ warm-up); user webhook rows of the create owners in the database: $ROWS"
    echo "- (d) 201 answers counted by wrk: $FACILITY_CREATED_OK (+ warm-up); facility webhook rows of the create owners: $FACILITY_ROWS; the same $CREATE_OWNERS owners as (a), each granted $FACILITY (internal PUT) before the load"
    echo "- non-2xx in (a)/(c)/(d): ${NON2XX[create]} / ${NON2XX[list_20]} / ${NON2XX[facility_create]} (should be 0)"
    echo "- server log: $LOG_WARN WARN, $LOG_ERROR ERROR lines"
    if ((RUNS > 1)); then
        echo "- each run (req/s, µs CPU / request, other processes' CPU):"
        for name in bare_post bare_get create bad_400 list_20 facility_create; do
            echo "    - $name: ${RUN_LOG[$name]}"
        done
    fi
    grep -E ' (WARN|ERROR) ' "$WORK/server.log" | head -n 5 | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' || true
} >"$WORK/summary.md"

mkdir -p "$(dirname "$RESULTS_FILE")"
cp "$WORK/summary.md" "$RESULTS_FILE"
echo
cat "$WORK/summary.md"
echo
echo "written to $RESULTS_FILE"
