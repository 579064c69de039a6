#!/usr/bin/env bash
# Load benchmark of a release build with the shared wrk scripts (../shared/bench).
#
#   benches/load.sh [sqlite|postgres] [SCENARIOS] [DURATION] [CONNECTIONS...]
#
# Starts a fresh lineage on 127.0.0.1:18080 with a fresh database, registers a bench client and
# user, seeds refresh-token families with `lineage token mint`, and runs ../shared/bench/run.sh for
# every connection count. Defaults: sqlite, refresh,client_credentials,jwks,introspect, 10s, 16 64.
# PostgreSQL uses postgres://postgres@127.0.0.1:5432/lineage_bench (dropped and re-created).
set -euo pipefail

BACKEND=${1:-sqlite}
SCENARIOS=${2:-refresh,client_credentials,jwks,introspect}
DURATION=${3:-10s}
shift $(( $# > 3 ? 3 : $# ))
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(16 64)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
BIN=$ROOT/target/release/lineage
[ -x "$BIN" ] || cargo build --release --bin lineage --manifest-path "$ROOT/Cargo.toml"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 2; }

WORK=$(mktemp -d)
PORT=${PORT:-18080}
case "$BACKEND" in
  sqlite) export LINEAGE_DATABASE_URL="sqlite://$WORK/bench.db" ;;
  postgres)
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS lineage_bench" -c "CREATE DATABASE lineage_bench"
    export LINEAGE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/lineage_bench" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export LINEAGE_KEY_SECRET=bench-key-secret-0123456789 LINEAGE_BIND=127.0.0.1:$PORT RUST_LOG=${RUST_LOG:-warn}
export LINEAGE_GC_INTERVAL=0

"$BIN" migrate >/dev/null
echo 'bench-password-123' | "$BIN" user create bench --password-stdin >/dev/null
CLIENT_JSON=$("$BIN" client create --name bench --client-id bench-client \
  --grant client_credentials,refresh_token --scope api:read --audience bench-api --json)
CLIENT_SECRET=$(printf '%s' "$CLIENT_JSON" | sed 's/.*"client_secret":"\([^"]*\)".*/\1/')
export CLIENT_ID=bench-client CLIENT_SECRET SCOPE=api:read
export REFRESH_SEED_CMD="'$BIN' token mint --user bench --client bench-client --count \$SEED_COUNT"

"$BIN" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; cat "$WORK/server.log" | tail -5 >&2; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

echo "# backend=$BACKEND database=$LINEAGE_DATABASE_URL workers=$(nproc) $(date -u +%FT%TZ)"
for c in "${CONNS[@]}"; do
  "$BENCH/run.sh" "http://127.0.0.1:$PORT" "$SCENARIOS" "$DURATION" "$c" || echo "# run.sh exited $? (errors in the run above)"
done
