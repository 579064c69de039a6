#!/usr/bin/env bash
# Load benchmark of a release build with the shared wrk scripts (../shared/bench).
#
#   benches/load.sh [sqlite|postgres] [SCENARIOS] [DURATION] [CONNECTIONS...]
#
# Starts a fresh lineage on 127.0.0.1:18080 with a fresh database, registers a bench client and
# user, seeds refresh-token families with `lineage token mint`, and runs ../shared/bench/run.sh for
# every connection count. Defaults: sqlite, refresh,client_credentials,jwks,introspect, 10s, 16 64.
#
# Scenario refresh_dpop (ours, benches/refresh_dpop.lua): refresh with a DPoP proof on every request.
# The families are minted bound to a P-256 key (`token mint --dpop-jkt`) and the proofs are signed
# by that key just before each run (`cargo run --release --example dpop -- proof --count N`,
# DPOP_PROOFS of them, default 150000: enough for 10 s at 15,000 rotations/s). It takes REPEAT,
# WARMUP and THREADS like run.sh and prints lines in run.sh's format.
# PostgreSQL uses postgres://postgres@127.0.0.1:5432/lineage_bench (dropped and re-created).
#
# NODES=2 (PostgreSQL only) starts two `lineage serve` processes on the one database, on PORT+1 and
# PORT+2, behind HAProxy in TCP mode on PORT (round robin per connection, `apt-get install -y
# haproxy`). wrk's refresh script hands each family's next token to whichever of its thread's
# connections is free, so a chain's rotations alternate between the nodes at random. After every run
# each node's rotation count (from its /metrics listener) is printed.
#
# PEER_URL=http://127.0.0.1:3901 pairs every measured run with the same run against the
# oidc-provider peer of ../shared/bench/peer (start it first with its bench-setup.sh; seeds from
# PEER_SEED_URL, default http://127.0.0.1:3902; client bench-client / bench-secret): lineage, then
# the peer at once, REPEAT times, each pair's ratio printed and their median at the end. On a
# machine whose speed drifts from minute to minute (a shared host), adjacent pairs compare fairly
# where two series measured minutes apart do not. Scenarios the peer offers: refresh,
# client_credentials, jwks.
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
NODES=${NODES:-1}
if [ "$NODES" -gt 1 ]; then
  [ "$BACKEND" = postgres ] || { echo "NODES > 1 needs the postgres backend" >&2; exit 2; }
  command -v haproxy >/dev/null || { echo "haproxy not found (apt-get install -y haproxy)" >&2; exit 2; }
fi

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

# One node on PORT, or NODES nodes on PORT+1.. behind HAProxy on PORT.
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  tail -n 5 "$WORK"/server*.log >&2
  rm -rf "$WORK"
}
trap cleanup EXIT
metrics_port() { echo $(( PORT + 100 + $1 )); }
if [ "$NODES" -le 1 ]; then
  "$BIN" serve > "$WORK/server.log" 2>&1 &
  PIDS+=($!)
else
  BACKENDS=""
  for n in $(seq 1 "$NODES"); do
    LINEAGE_BIND=127.0.0.1:$(( PORT + n )) LINEAGE_METRICS_BIND=127.0.0.1:$(metrics_port "$n") \
      "$BIN" serve > "$WORK/server$n.log" 2>&1 &
    PIDS+=($!)
    BACKENDS+="    server node$n 127.0.0.1:$(( PORT + n ))"$'\n'
  done
  cat > "$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend lineage
    bind 127.0.0.1:$PORT
    default_backend nodes
backend nodes
    balance roundrobin
$BACKENDS
CFG
  haproxy -q -f "$WORK/haproxy.cfg" &
  PIDS+=($!)
  for n in $(seq 1 "$NODES"); do
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$(( PORT + n ))/healthz" >/dev/null && break; sleep 0.2; done
  done
fi
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

rotations_per_node() { # "node1=N node2=M" from each node's /metrics
  local out="" n count
  for n in $(seq 1 "$NODES"); do
    count=$(curl -sf "http://127.0.0.1:$(metrics_port "$n")/metrics" \
      | awk '/^lineage_refresh_rotations_total/ {print $2}')
    out+="node$n=${count:-?} "
  done
  echo "$out"
}

# refresh_dpop: one run of DURATION at CONNS connections, printed like run.sh's lines.
DPOP=$ROOT/target/release/examples/dpop
dpop_run() { # dpop_run CONNS DURATION LABEL
  local c=$1 dur=$2 label=$3 threads=${THREADS:-2} out result
  "$BIN" token mint --user bench --client bench-client --count $(( c + threads )) \
    --dpop-jkt "$DPOP_JKT" > "$WORK/dpop_tokens"
  "$DPOP" proof --key "$WORK/device.key" --htu "http://127.0.0.1:$PORT/token" \
    --count "${DPOP_PROOFS:-150000}" > "$WORK/dpop_proofs"
  out=$(REFRESH_TOKENS_FILE="$WORK/dpop_tokens" PROOFS_FILE="$WORK/dpop_proofs" BENCH_DIR="$BENCH" \
    THREADS=$threads wrk -t"$threads" -c"$c" -d"$dur" --timeout 5s -s "$ROOT/benches/refresh_dpop.lua" \
    "http://127.0.0.1:$PORT" 2>&1)
  result=$(grep '^RESULT ' <<<"$out" | tail -n1)
  [ -n "$result" ] || { echo "$out" >&2; echo "# refresh_dpop: no RESULT line"; return; }
  echo "scenario=refresh_dpop conns=$c threads=$threads duration=$dur rep=$label ${result#RESULT scenario=refresh_dpop }"
}
dpop_scenario() { # dpop_scenario CONNS
  local c=$1 rep
  [ -x "$DPOP" ] || cargo build --release --example dpop --manifest-path "$ROOT/Cargo.toml"
  if [ ! -f "$WORK/device.key" ]; then
    DPOP_JKT=$("$DPOP" key --out "$WORK/device.key" --alg "${DPOP_ALG:-ES256}")
  fi
  [ "${WARMUP:-2s}" = 0 ] || dpop_run "$c" "${WARMUP:-2s}" warmup > /dev/null
  for rep in $(seq 1 "${REPEAT:-1}"); do
    sleep "${PAUSE:-1}"
    dpop_run "$c" "$DURATION" "$rep/${REPEAT:-1}"
  done
}

SHARED_SCENARIOS=$(tr ',' '\n' <<<"$SCENARIOS" | grep -vx refresh_dpop | paste -sd, - || true)

# One run of SCENARIO at CONNS against lineage and one against the peer, and their ratio.
PEER_SEED_URL=${PEER_SEED_URL:-http://127.0.0.1:3902}
rps_of() { sed -n 's/.* rps=\([^ ]*\).*/\1/p' <<<"$1"; }
paired_runs() { # paired_runs SCENARIO CONNS
  local scenario=$1 c=$2 rep ours theirs ratios=()
  for rep in $(seq 1 "${REPEAT:-1}"); do
    ours=$(REPEAT=1 "$BENCH/run.sh" "http://127.0.0.1:$PORT" "$scenario" "$DURATION" "$c" | grep '^scenario=' \
      || echo "# run.sh exited $? (errors in this run)")
    theirs=$(REPEAT=1 CLIENT_ID=bench-client CLIENT_SECRET=bench-secret \
      REFRESH_SEED_CMD="curl -s '$PEER_SEED_URL/seed?n='\$SEED_COUNT" \
      "$BENCH/run.sh" "$PEER_URL" "$scenario" "$DURATION" "$c" | grep '^scenario=' \
      || echo "# the peer's run.sh exited $? (errors in this run)")
    echo "lineage ${ours/rep=1\/1/rep=$rep/${REPEAT:-1}}"
    echo "peer    ${theirs/rep=1\/1/rep=$rep/${REPEAT:-1}}"
    if [ -n "$(rps_of "$ours")" ] && [ -n "$(rps_of "$theirs")" ]; then
      ratios+=("$(awk -v a="$(rps_of "$ours")" -v b="$(rps_of "$theirs")" 'BEGIN { printf "%.2f", a / b }')")
      echo "pair    scenario=$scenario conns=$c rep=$rep ratio=${ratios[-1]}"
    fi
  done
  [ ${#ratios[@]} -eq 0 ] || echo "pairs   scenario=$scenario conns=$c n=${#ratios[@]} ratio_median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }') ratios=$(IFS=,; echo "${ratios[*]}")"
}

echo "# backend=$BACKEND nodes=$NODES database=$LINEAGE_DATABASE_URL cores=$(nproc) $(date -u +%FT%TZ)"
for c in "${CONNS[@]}"; do
  if [ -n "$SHARED_SCENARIOS" ] && [ -n "${PEER_URL:-}" ]; then
    IFS=, read -r -a shared <<<"$SHARED_SCENARIOS"
    for scenario in "${shared[@]}"; do
      paired_runs "$scenario" "$c"
    done
  elif [ -n "$SHARED_SCENARIOS" ]; then
    "$BENCH/run.sh" "http://127.0.0.1:$PORT" "$SHARED_SCENARIOS" "$DURATION" "$c" || echo "# run.sh exited $? (errors in the run above)"
  fi
  if grep -qx refresh_dpop <<<"$(tr ',' '\n' <<<"$SCENARIOS")"; then
    dpop_scenario "$c"
  fi
  [ "$NODES" -le 1 ] || echo "# rotations so far (warm-ups included): $(rotations_per_node)"
done
