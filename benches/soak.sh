#!/usr/bin/env bash
# Soak: a long mixed load against a release build, watching memory, table sizes and errors.
#
#   benches/soak.sh [sqlite|postgres] [SECONDS]        (default: sqlite 600)
#
# For SECONDS at once: refresh chains from ../shared/bench (wrk, 16 connections, `run.sh
# refresh`), and benches/soak_flows.py: people signing in through /authorize and /login, code
# exchanges with PKCE, a refresh each, introspection, revocation of the family, and a resource
# server polling the revocation feed every second. Access tokens live 60 s and housekeeping runs
# every 30 s, so revoked families are collected while the soak runs. Prints the server's resident
# memory (after a 60 s warm-up, the peak, at the end), the table sizes at the end, and both
# drivers' results; exits non-zero on any 5xx or unexpected answer.
set -euo pipefail

BACKEND=${1:-sqlite}
SECONDS_TOTAL=${2:-600}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
BIN=$ROOT/target/release/lineage
[ -x "$BIN" ] || cargo build --release --bin lineage --manifest-path "$ROOT/Cargo.toml"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 2; }

WORK=$(mktemp -d)
PORT=${PORT:-18090}
case "$BACKEND" in
  sqlite) export LINEAGE_DATABASE_URL="sqlite://$WORK/soak.db" ;;
  postgres)
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS lineage_soak" -c "CREATE DATABASE lineage_soak"
    export LINEAGE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/lineage_soak" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
export LINEAGE_KEY_SECRET=soak-key-secret-0123456789 LINEAGE_BIND=127.0.0.1:$PORT RUST_LOG=${RUST_LOG:-warn}
export LINEAGE_ACCESS_TOKEN_TTL=60 LINEAGE_GC_INTERVAL=30s LINEAGE_LOG_FORMAT=json

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

"$BIN" migrate >/dev/null
SOAK_PASSWORD=soak-password-1234
echo "$SOAK_PASSWORD" | "$BIN" user create soak --password-stdin >/dev/null
REDIRECT=http://127.0.0.1:9/callback
APP=$("$BIN" client create --name soak-app --client-id soak-app --first-party \
  --grant authorization_code,refresh_token --redirect-uri "$REDIRECT" --scope api:read --json)
FEED=$("$BIN" client create --name soak-feed --client-id soak-feed --grant client_credentials \
  --scope feed:read --permission revocations --json)
BENCH_CLIENT=$("$BIN" client create --name bench --client-id bench-client \
  --grant client_credentials,refresh_token --scope api:read --audience bench-api --json)

"$BIN" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; tail -5 "$WORK/server.log" >&2; rm -rf "$WORK"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

# Resident memory in KiB: all of it, the heap (anonymous) and file pages (SQLite's mmap of the
# database counts here, up to its 256 MiB limit, and is the kernel's to drop).
rss_kib() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf " %s", $2}' "/proc/$SERVER/status"; }
( while kill -0 $SERVER 2>/dev/null; do echo "$(date +%s)$(rss_kib)"; sleep 5; done ) > "$WORK/rss" &
SAMPLER=$!
STARTED=$(date +%s)

echo "# soak backend=$BACKEND seconds=$SECONDS_TOTAL $(date -u +%FT%TZ) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
CLIENT_ID=bench-client CLIENT_SECRET=$(printf '%s' "$BENCH_CLIENT" | json_field client_secret) SCOPE=api:read \
  REFRESH_SEED_CMD="'$BIN' token mint --user soak --client bench-client --count \$SEED_COUNT" \
  "$BENCH/run.sh" "http://127.0.0.1:$PORT" refresh "${SECONDS_TOTAL}s" 16 > "$WORK/wrk.out" 2>&1 &
WRK=$!
set +e
SOAK_BASE="http://127.0.0.1:$PORT" SOAK_CLIENT_ID=soak-app \
  SOAK_CLIENT_SECRET=$(printf '%s' "$APP" | json_field client_secret) SOAK_REDIRECT=$REDIRECT \
  SOAK_USERNAME=soak SOAK_PASSWORD=$SOAK_PASSWORD SOAK_FEED_ID=soak-feed \
  SOAK_FEED_SECRET=$(printf '%s' "$FEED" | json_field client_secret) SOAK_SECONDS=$SECONDS_TOTAL \
  python3 "$ROOT/benches/soak_flows.py" > "$WORK/flows.out"
FLOWS=$?
wait $WRK
WRK_RC=$?
set -e
kill $SAMPLER 2>/dev/null || true

echo "# flows: $(cat "$WORK/flows.out")"
grep '^scenario=' "$WORK/wrk.out" | sed 's/^/# wrk: /' || cat "$WORK/wrk.out"
python3 - "$WORK/rss" "$STARTED" <<'EOF'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 4]
started = int(sys.argv[2])
warm = [r for r in rows if r[0] >= started + 60] or rows
for i, name in ((1, "rss"), (2, "heap"), (3, "file")):
    print(f"# {name}_mib after_warmup={warm[0][i]/1024:.1f} peak={max(r[i] for r in rows)/1024:.1f} "
          f"end={rows[-1][i]/1024:.1f} samples={len(rows)}")
EOF
COUNTS="SELECT (SELECT count(*) FROM refresh_families), (SELECT count(*) FROM refresh_families WHERE revoked_at IS NULL), (SELECT count(*) FROM refresh_tokens), (SELECT count(*) FROM audit_events), (SELECT count(*) FROM revocation_feed), (SELECT count(*) FROM auth_codes), (SELECT count(*) FROM browser_sessions)"
case "$BACKEND" in
  sqlite)
    python3 - "$WORK/soak.db" "$COUNTS" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
f, live, t, a, feed, codes, sessions = c.execute(sys.argv[2]).fetchone()
size = c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
print(f"# tables families={f} live={live} refresh_tokens={t} audit_events={a} feed={feed} codes={codes} sessions={sessions} database_bytes={size}")
EOF
    ;;
  postgres)
    echo "# tables (families, live, refresh_tokens, audit_events, feed, codes, sessions, database_bytes):" \
      $(psql -At -h 127.0.0.1 -U postgres -d lineage_soak -c "$COUNTS" -c "SELECT pg_database_size('lineage_soak')" | tr '\n|' '  ')
    ;;
esac
[ "$FLOWS" -eq 0 ] && [ "$WRK_RC" -eq 0 ] || { echo "# soak: errors (flows exit $FLOWS, wrk exit $WRK_RC)"; exit 1; }
