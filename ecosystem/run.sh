#!/usr/bin/env bash
# The contract as an ecosystem: proves openapi.yaml works with the tools its users use.
#
#   bash ecosystem/run.sh                        # everything (installs what is missing first)
#   bash ecosystem/run.sh schemathesis swagger-ui  # only these steps (install/build/server as needed)
#   bash ecosystem/run.sh install                # only install the pinned tools
#   bash ecosystem/generate.sh                   # only regenerate the clients (ecosystem/generated/)
#   UPDATE_SCREENSHOT=1 bash ecosystem/run.sh swagger-ui   # also refresh docs/swagger-ui.png
#
# Steps: spec-validator, redocly, spec-examples, schemathesis, python-client, typescript-client,
# openapi-generator, swagger-ui. Each step's output is also in ecosystem/out/logs/<step>.log.
# Knobs: ST_MAX_EXAMPLES (default 150), ST_SEED (default fixed: reproducible CI; `random` for a
# fresh one), CARGO_TARGET_DIR (honoured). Needs root for the one-time `apt-get install chromium`.
set -euo pipefail

ECO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$ECO")"
OUT="$ECO/out"
GEN="$ECO/generated"
VENV="$ECO/.venv"
LOGS="$OUT/logs"
ALL_STEPS=(spec-validator redocly spec-examples schemathesis python-client typescript-client openapi-generator swagger-ui)
LIVE_STEPS=" schemathesis python-client typescript-client openapi-generator swagger-ui "
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-150}"
ST_SEED="${ST_SEED:-20261126}"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=("${ALL_STEPS[@]}")
INSTALL_ONLY=0
[ "${STEPS[*]}" = install ] && INSTALL_ONLY=1 && STEPS=()
for s in "${STEPS[@]}"; do
  [[ " ${ALL_STEPS[*]} " == *" $s "* ]] || { echo "unknown step '$s' (steps: ${ALL_STEPS[*]})" >&2; exit 2; }
done

say() { printf '\n=== ecosystem: %s\n' "$*"; }
now() { date +%s; }
T0=$(now)

# --- cleanup: only what this script started --------------------------------------------------
SERVER_PID=""
STEP_PID=""
WORK=""
cleanup() {
  # A step runs as its own process group (job control below): end it and whatever it started.
  if [ -n "$STEP_PID" ] && kill -0 "$STEP_PID" 2>/dev/null; then
    kill -TERM -- "-$STEP_PID" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$STEP_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT" "$LOGS" "$GEN"

# --- installs (idempotent: each is skipped when its pinned inputs have not changed) ----------
install_tools() {
  say "install"
  local t
  t=$(now)
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q chromium
  fi
  # Ruby and Typhoeus (Debian's) run the Ruby client OpenAPI Generator makes.
  if ! command -v ruby >/dev/null || ! ruby -e 'require "typhoeus"' 2>/dev/null; then
    echo "installing Debian's ruby and ruby-typhoeus"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends ruby ruby-typhoeus
  fi
  /usr/bin/chromium --version 2>/dev/null | head -1
  ruby --version
  java -version 2>&1 | head -1

  local want have
  want="$(sha256sum "$ECO/requirements.txt" | cut -c1-64) $(python3 --version)"
  have="$(cat "$VENV/.installed" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    echo "installing Python packages (requirements.txt) into ecosystem/.venv"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$ECO/requirements.txt"
    echo "$want" >"$VENV/.installed"
  fi

  want="$(sha256sum "$ECO/package-lock.json" | cut -c1-64) $(node --version)"
  have="$(cat "$ECO/node_modules/.installed" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    echo "installing npm packages (package-lock.json) into ecosystem/node_modules"
    (cd "$ECO" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$ECO/node_modules/.installed"
  fi
  echo "install: $(($(now) - t)) s"
}

# --- the server ------------------------------------------------------------------------------
start_server() {
  say "build and start webhooks-server"
  local t target
  t=$(now)
  (cd "$ROOT" && cargo build -q -p webhooks-server)
  target="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$target" in /*) ;; *) target="$ROOT/$target" ;; esac
  BIN="$target/debug/webhooks-server"
  WORK="$(mktemp -d /tmp/webhooks-ecosystem.XXXXXX)"
  # No rate limit: schemathesis sends thousands of requests with one token (one client). It also
  # creates far more than the 100 webhooks an owner may have by default, all as one owner, and
  # expects a schema-valid create to succeed: limits it cannot know of are lifted.
  "$BIN" --bind 127.0.0.1:0 --data-dir "$WORK/data" --no-worker --rate-limit 0 \
    --max-webhooks-per-owner 1000000 >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  BASE_URL=""
  for _ in $(seq 300); do
    BASE_URL="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$WORK/server.log" | head -1)"
    if [ -n "$BASE_URL" ] && curl -fsS -o /dev/null "$BASE_URL/api-docs/openapi.json"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "the server exited" >&2; return 1; }
    BASE_URL=""
    sleep 0.1
  done
  [ -n "$BASE_URL" ] || { cat "$WORK/server.log"; echo "the server did not come up" >&2; return 1; }
  # One token with the internal scopes serves every operation (its role is FACILITY_USER).
  TOKEN_ALL="$("$BIN" --data-dir "$WORK/data" token --client-id ecosystem --sub schemathesis \
    --scope events:publish --scope facilities:write | tail -1)"
  # The clients' user (every client's token below is of user-1) can access two facilities, for
  # the facility webhook round trips.
  "$BIN" --data-dir "$WORK/data" grant --user user-1 --facility NUR-1 --facility NUR-2 >/dev/null
  export BASE_URL BIN WORK TOKEN_ALL
  echo "server: $BASE_URL (pid $SERVER_PID, data in $WORK), ready in $(($(now) - t)) s"
}

token() { "$BIN" --data-dir "$WORK/data" token --client-id "$1" --sub "$2" | tail -1; }

# --- the steps -------------------------------------------------------------------------------
step_spec_validator() {
  "$VENV/bin/openapi-spec-validator" "$ROOT/openapi.yaml"
}

step_redocly() {
  local report="$OUT/redocly-lint.json" rc=0
  (cd "$ECO" && node_modules/.bin/redocly lint "$ROOT/openapi.yaml" --config redocly.yaml --format=json \
    >"$report" 2>"$OUT/redocly-lint.stderr") || rc=$?
  [ -s "$report" ] || { cat "$OUT/redocly-lint.stderr"; return 1; }
  "$VENV/bin/python" "$ECO/contract/check_lint.py" "$report" "$ECO/known-lint-warnings.txt"
  return "$rc"
}

step_spec_examples() {
  (cd "$ECO" && SPEC="$ROOT/openapi.yaml" "$VENV/bin/pytest" -q -p no:cacheprovider tests)
}

step_schemathesis() {
  local rc=0 seed=(--seed "$ST_SEED")
  [ "$ST_SEED" = random ] && seed=()
  rm -rf "$OUT/schemathesis" && mkdir -p "$OUT/schemathesis"
  # Known, exactly matched non-failures are dropped by contract/st_hooks.py (filter_failure),
  # each printed here; see README.md "Schemathesis findings".
  (cd "$OUT/schemathesis" &&
    ST_DROPPED_LOG="$OUT/schemathesis/dropped.tsv" SCHEMATHESIS_HOOKS=st_hooks PYTHONPATH="$ECO/contract" \
      "$VENV/bin/schemathesis" run "$ROOT/openapi.yaml" \
      --url "$BASE_URL" \
      --header "Authorization: Bearer $TOKEN_ALL" \
      --checks all \
      --mode all \
      --phases examples,coverage,fuzzing,stateful \
      --max-examples "$ST_MAX_EXAMPLES" \
      "${seed[@]}" \
      --generation-database none \
      --request-timeout 10 \
      --report junit --report-dir "$OUT/schemathesis" \
      --no-color) || rc=$?
  if [ -s "$OUT/schemathesis/dropped.tsv" ]; then
    echo "failures dropped as known findings (by finding):"
    cut -f1 "$OUT/schemathesis/dropped.tsv" | sort | uniq -c
  fi
  return $rc
}

step_python_client() {
  bash "$ECO/generate.sh" python
  BASE_URL="$BASE_URL" TOKEN="$(token python-client user-1)" PYTHONPATH="$GEN/python-client" \
    "$VENV/bin/python" "$ECO/clients/python_smoke.py"
}

step_typescript_client() {
  bash "$ECO/generate.sh" typescript
  (cd "$ECO" &&
    node_modules/.bin/tsc -p tsconfig.json &&
    echo "tsc --noEmit: clean" &&
    BASE_URL="$BASE_URL" TOKEN="$(token typescript-client user-1)" node_modules/.bin/tsx clients/ts_smoke.ts)
}

step_openapi_generator() {
  OG_GENERATORS="python ruby" bash "$ECO/generate.sh" openapi-generator
  BASE_URL="$BASE_URL" TOKEN="$(token openapi-generator user-1)" PYTHONPATH="$GEN/openapi-generator-python" \
    "$VENV/bin/python" "$ECO/clients/ogen_python_smoke.py"
  BASE_URL="$BASE_URL" TOKEN="$(token openapi-generator-ruby user-1)" \
    ruby -I "$GEN/openapi-generator-ruby/lib" "$ECO/clients/ogen_ruby_smoke.rb"
}

step_swagger_ui() {
  "$VENV/bin/python" -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
    "$ROOT/openapi.yaml" "$GEN/openapi.json"
  rm -f "$OUT"/swagger-ui*.png "$OUT"/swagger-ui-failure.html
  (cd "$ECO" && BASE_URL="$BASE_URL" TOKEN="$(token swagger-ui user-1)" SPEC_JSON="$GEN/openapi.json" OUT_DIR="$OUT" \
    node browser/swagger_ui.mjs)
  if [ "${UPDATE_SCREENSHOT:-0}" = 1 ]; then
    mkdir -p "$ROOT/docs"
    cp "$OUT/swagger-ui-overview.png" "$ROOT/docs/swagger-ui.png"
    echo "updated docs/swagger-ui.png"
  fi
}

# --- run -------------------------------------------------------------------------------------
install_tools
[ "$INSTALL_ONLY" = 1 ] && exit 0

NEED_SERVER=0
for s in "${STEPS[@]}"; do [[ "$LIVE_STEPS" == *" $s "* ]] && NEED_SERVER=1; done
if [ "$NEED_SERVER" = 1 ]; then start_server; fi

declare -A RESULT SECONDS_OF
FAILED=0
for s in "${STEPS[@]}"; do
  say "$s"
  t=$(now)
  # In the background with job control, so that it has its own process group and a signal to
  # this script reaches the trap at once (bash defers traps while a foreground child runs).
  set +e
  set -m
  (
    (set -euo pipefail; "step_${s//-/_}") 2>&1 | tee "$LOGS/$s.log"
    exit "${PIPESTATUS[0]}"
  ) &
  STEP_PID=$!
  set +m
  wait "$STEP_PID"
  rc=$?
  STEP_PID=""
  set -e
  SECONDS_OF[$s]=$(($(now) - t))
  if [ "$rc" = 0 ]; then RESULT[$s]=PASS; else RESULT[$s]="FAIL (exit $rc)"; FAILED=$((FAILED + 1)); fi
done

if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "the server died during the run; its log:"; tail -50 "$WORK/server.log"; FAILED=$((FAILED + 1))
fi

say "summary"
for s in "${STEPS[@]}"; do printf '  %-20s %-16s %4s s\n' "$s" "${RESULT[$s]}" "${SECONDS_OF[$s]}"; done
PASSED=$((${#STEPS[@]} - FAILED))
[ "$PASSED" -lt 0 ] && PASSED=0
echo "  total: $(($(now) - T0)) s; logs in ecosystem/out/logs/"
[ "$FAILED" = 0 ] && echo "ecosystem: PASS" || echo "ecosystem: FAIL"
echo "ecosystem: ${PASSED} passed, ${FAILED} failed"
exit $((FAILED > 0))
