# bench/tokens.sh — sourced by api.sh and postgres.sh: tokens that spread the create scenario
# over many owners. An owner (client and user) may have 100 webhooks (the server's default
# `--max-webhooks-per-owner`), so one token cannot carry a create benchmark; many owners is
# also what a real server sees (and on PostgreSQL one owner's creates take turns on its lock).

# seconds TEXT — wrk's duration (`10s`, `2m`, `1h`, or bare seconds) in whole seconds.
seconds() {
    local n=${1%[smh]}
    case $1 in
        *m) echo $((n * 60)) ;;
        *h) echo $((n * 3600)) ;;
        *) echo "$n" ;;
    esac
}

# create_owners DURATION… — enough owners for creates at up to 25000/s for the given runs
# (100 webhooks each), unless CREATE_OWNERS says otherwise.
create_owners() {
    local total=0 d
    for d in "$@"; do total=$((total + $(seconds "$d"))); done
    echo "${CREATE_OWNERS:-$((total * 250))}"
}

# mint_tokens FILE COUNT PREFIX TOKEN_CMD… — writes COUNT tokens, one per line, for the users
# PREFIX-1 … PREFIX-COUNT; TOKEN_CMD is the server's `token` command without `--sub`.
mint_tokens() {
    local file=$1 count=$2 prefix=$3 i
    shift 3
    : >"$file"
    for i in $(seq 1 "$count"); do
        "$@" --sub "$prefix-$i" | tail -n1 >>"$file"
    done
}
