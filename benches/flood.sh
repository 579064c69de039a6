#!/usr/bin/env bash
# Sign-in flood against a release build: CONNECTIONS concurrent wrong-password sign-ins on /login
# while /healthz latency and refresh rotations on /token are measured next to it, and the
# server's resident memory is sampled (peak of VmRSS every 100 ms, and VmHWM at the end).
#
#   benches/flood.sh [sqlite|postgres] [DURATION] [CONNECTIONS]
#
# Defaults: sqlite, 15s, 500. Two phases, each on a fresh server and database:
#   one-address     every attempt from one address (203.0.113.9) for one existing user: the
#                   per-address failure limit and the per-username back-off answer 429;
#   many-addresses  every attempt from a new address for a new username, so no limit knows it
#                   and each needs a password check: the bounded hashing pool answers 503.
# The server trusts 127.0.0.1 as a proxy so the flood can claim addresses with X-Forwarded-For;
# /healthz and the refresh chains come from 127.0.0.1 itself. Everything else is the default
# configuration. Port 18090 (PORT=...), SQLite in a temporary directory, PostgreSQL database
# lineage_flood (dropped and re-created): never the port or database of benches/load.sh.
# Needs wrk and curl; the refresh chains use ../shared/bench/refresh.lua (BENCH_DIR=...).
# Targets: peak RSS < 512 MiB; /healthz and refresh p99 < 50 ms; the flood answered with
# 429/503, not 401, once the limits are in force.
set -euo pipefail

BACKEND=${1:-sqlite}
DURATION=${2:-15s}
CONNS=${3:-500}
SECS=${DURATION%s}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
BIN=$ROOT/target/release/lineage
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 2; }
[ -f "$BENCH/refresh.lua" ] || { echo "no $BENCH/refresh.lua (set BENCH_DIR)" >&2; exit 2; }
cargo build --release --bin lineage --manifest-path "$ROOT/Cargo.toml" >&2
ulimit -n 4096 2>/dev/null || true

WORK=$(mktemp -d)
PORT=${PORT:-18090}
URL=http://127.0.0.1:$PORT
SERVER=
stop_server() {
  [ -n "$SERVER" ] || return 0
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}
trap 'stop_server; rm -rf "$WORK"' EXIT

export LINEAGE_KEY_SECRET=flood-key-secret-0123456789 LINEAGE_BIND=127.0.0.1:$PORT
export LINEAGE_GC_INTERVAL=0 LINEAGE_TRUSTED_PROXIES=127.0.0.1/32 RUST_LOG=${RUST_LOG:-warn}

fresh_server() {
  stop_server
  case "$BACKEND" in
    sqlite) rm -f "$WORK"/flood.db*; export LINEAGE_DATABASE_URL="sqlite://$WORK/flood.db" ;;
    postgres)
      psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS lineage_flood" -c "CREATE DATABASE lineage_flood"
      export LINEAGE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/lineage_flood" ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
  esac
  "$BIN" migrate >/dev/null
  echo 'flood-victim-password' | "$BIN" user create flood-victim --password-stdin >/dev/null
  echo 'bench-password-123' | "$BIN" user create bench --password-stdin >/dev/null
  local json
  json=$("$BIN" client create --name flood --client-id flood-client \
    --grant client_credentials,refresh_token --scope api:read --audience flood-api --json)
  export CLIENT_ID=flood-client CLIENT_SECRET
  CLIENT_SECRET=$(printf '%s' "$json" | sed 's/.*"client_secret":"\([^"]*\)".*/\1/')
  "$BIN" token mint --user bench --client flood-client --count 16 > "$WORK/refresh-tokens"
  "$BIN" serve > "$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 50); do curl -sf "$URL/healthz" >/dev/null && return 0; sleep 0.2; done
  echo "the server did not start:" >&2; tail -5 "$WORK/server.log" >&2; exit 1
}

# A sign-in form's CSRF token and the pre-session cookie it is bound to, fetched once.
form_credentials() {
  local page
  page=$(curl -s -c "$WORK/jar" "$URL/login")
  CSRF_TOKEN=$(printf '%s' "$page" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
  # The cookie is HttpOnly: curl's jar marks such lines with a `#HttpOnly_` prefix.
  PRE_SESSION_COOKIE=$(sed 's/^#HttpOnly_//' "$WORK/jar" | awk '!/^#/ && NF >= 7 { print $6 "=" $7 }' | head -1)
  [ -n "$CSRF_TOKEN" ] && [ -n "$PRE_SESSION_COOKIE" ] || { echo "no CSRF token on /login" >&2; exit 1; }
  export CSRF_TOKEN PRE_SESSION_COOKIE
}

kib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

phase() {
  local name=$1 spread=$2
  fresh_server
  form_credentials
  local measure=$((SECS - 4))
  (( measure >= 3 )) || measure=3
  : > "$WORK/rss"
  ( while kill -0 "$SERVER" 2>/dev/null; do
      awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER/status" 2>/dev/null >> "$WORK/rss" || true
      sleep 0.1
    done ) &
  local sampler=$!
  SPREAD=$spread VICTIM=flood-victim timeout $((SECS + 30)) \
    wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 10s -s "$ROOT/benches/flood/login.lua" "$URL" \
    > "$WORK/login.out" 2>&1 &
  local flood=$!
  sleep 2
  timeout $((measure + 30)) wrk -t1 -c2 -d"${measure}s" -s "$ROOT/benches/flood/healthz.lua" "$URL" \
    > "$WORK/healthz.out" 2>&1 &
  local health=$!
  REFRESH_TOKENS_FILE="$WORK/refresh-tokens" THREADS=1 timeout $((measure + 30)) \
    wrk -t1 -c4 -d"${measure}s" -s "$BENCH/refresh.lua" "$URL" > "$WORK/refresh.out" 2>&1 &
  local refresh=$!
  wait "$flood" "$health" "$refresh" || true
  local hwm
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER/status")
  stop_server
  wait "$sampler" 2>/dev/null || true
  local peak
  peak=$(sort -n "$WORK/rss" | tail -1)
  echo "## phase=$name connections=$CONNS duration=$DURATION"
  grep -h '^RESULT' "$WORK/login.out" "$WORK/healthz.out" "$WORK/refresh.out" || {
    echo "wrk printed no result:" >&2; cat "$WORK"/*.out >&2; }
  echo "RESULT scenario=memory peak_rss_mib=$(kib "${peak:-0}") vm_hwm_mib=$(kib "${hwm:-0}")"
  verdict "$hwm"
}

# PASS/MISS against the targets, from this phase's RESULT lines.
verdict() {
  local hwm=$1 h r l
  h=$(sed -n 's/.*scenario=healthz.* p99_ms=\([0-9.]*\).*/\1/p' "$WORK/healthz.out")
  r=$(sed -n 's/.*scenario=refresh.* p99_ms=\([0-9.]*\).*/\1/p' "$WORK/refresh.out")
  l=$(grep -h 'scenario=login_flood' "$WORK/login.out" || true)
  awk -v h="${h:-999}" -v r="${r:-999}" -v m="${hwm:-0}" -v l="$l" 'BEGIN {
    split(l, kv, " "); for (i in kv) { split(kv[i], p, "="); v[p[1]] = p[2] }
    refused = v["status_429"] + v["status_503"]; total = refused + v["status_401"]
    printf "TARGET peak_rss<512MiB %s (%.1f MiB)\n", (m / 1024 < 512) ? "PASS" : "MISS", m / 1024
    printf "TARGET healthz_p99<50ms %s (%s ms)\n", (h < 50) ? "PASS" : "MISS", h
    printf "TARGET refresh_p99<50ms %s (%s ms)\n", (r < 50) ? "PASS" : "MISS", r
    printf "TARGET flood_refused %s (%d of %d answered 429/503, %d got 401)\n",
      (total > 0 && refused > v["status_401"]) ? "PASS" : "MISS", refused, total, v["status_401"]
  }'
}

echo "# lineage sign-in flood: backend=$BACKEND $(date -u +%FT%TZ) cores=$(nproc)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
phase one-address 0
phase many-addresses 1
