#!/usr/bin/env bash
# Regenerates the clients from ../openapi.yaml into ecosystem/generated/ (git-ignored):
#
#   bash ecosystem/generate.sh                   # all of them
#   bash ecosystem/generate.sh python typescript # some: python | typescript | openapi-generator
#   OG_GENERATORS=go bash ecosystem/generate.sh openapi-generator  # other OpenAPI Generator languages
#
# OpenAPI Generator makes two clients by default: `python` and `ruby` (the third language, run
# against the live server by ecosystem/clients/ogen_ruby_smoke.rb with Debian's ruby-typhoeus).
#
# Needs the pinned tools: `bash ecosystem/run.sh install` installs them (run.sh calls this script).
set -euo pipefail
ECO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$ECO")"
SPEC="$ROOT/openapi.yaml"
GEN="$ECO/generated"
VENV="$ECO/.venv"
OG_GENERATORS="${OG_GENERATORS:-python ruby}"

[ -x "$VENV/bin/openapi-python-client" ] && [ -x "$ECO/node_modules/.bin/openapi-typescript" ] ||
  { echo "the tools are not installed: run 'bash ecosystem/run.sh install' first" >&2; exit 1; }

python_client() {
  rm -rf "$GEN/python-client"
  # ruff (a dependency of openapi-python-client) formats the output; it must be on PATH.
  (cd "$ECO" && PATH="$VENV/bin:$PATH" openapi-python-client generate --path "$SPEC" \
    --output-path "$GEN/python-client" --overwrite)
  echo "python: $GEN/python-client (package webhooks_api_client)"
}

typescript_client() {
  rm -rf "$GEN/typescript" && mkdir -p "$GEN/typescript"
  (cd "$ECO" && node_modules/.bin/openapi-typescript "$SPEC" -o "$GEN/typescript/schema.d.ts")
  echo "typescript: $GEN/typescript/schema.d.ts (use with openapi-fetch)"
}

openapi_generator_client() { # GENERATOR
  local generator=$1
  local out="$GEN/openapi-generator-$generator" log="$GEN/openapi-generator-$generator.log"
  rm -rf "$out"
  local props=hideGenerationTimestamp=true
  case "$generator" in
    python) props="$props,packageName=webhooks_ogen,projectName=webhooks-ogen" ;;
    ruby) props="$props,gemName=webhooks_ogen,moduleName=WebhooksOgen" ;;
  esac
  "$VENV/bin/openapi-generator-cli" generate -i "$SPEC" -g "$generator" -o "$out" \
    --additional-properties="$props" >"$log" 2>&1 || { tail -40 "$log"; return 1; }
  grep -E "WARN|ERROR" "$log" | sed 's/^\[main\] //' | sort | uniq -c || true
  echo "openapi-generator ($generator): $out (log: $log)"
}

mkdir -p "$GEN"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(python typescript openapi-generator)
for t in "${targets[@]}"; do
  case "$t" in
    python) python_client ;;
    typescript) typescript_client ;;
    openapi-generator) for g in $OG_GENERATORS; do openapi_generator_client "$g"; done ;;
    *) echo "unknown client '$t' (python | typescript | openapi-generator)" >&2; exit 2 ;;
  esac
done
