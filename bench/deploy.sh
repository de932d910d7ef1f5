#!/usr/bin/env bash
# A multi-instance deployment on this machine, measured (BENCHMARKS.md, docs/DEPLOYMENT.md):
# a PostgreSQL primary with one streaming replica, PgBouncer in transaction mode in front
# of the primary, N `kamiyo serve` instances and HAProxy in front of them.
#
#   bench/deploy.sh
#
# Steps: build release binaries (or use BIN_DIR); create a throwaway primary (initdb, port
# PRIMARY_PORT) and a replica of it (pg_basebackup -R, port REPLICA_PORT) under WORK_DIR;
# seed INCIDENTS incidents; create an enterprise user and AUTH_KEYS keys (rate limits are
# per key); start PgBouncer (pool_mode = transaction, BOUNCER_POOL server sessions).
# Then, for each N in INSTANCES: start N instances (database.url through PgBouncer with
# database.transaction_pooling, the primary as database.direct_url, the replica as
# database.read_url, rate_limit.backend = "postgres", pool POOL each) and HAProxy
# (round robin) before them, warm up, and run wrk through HAProxy on the listing for
# DURATION with CONNECTIONS connections, sampling the sessions on the primary and on the
# replica during the run. Then, with the most instances, raise the connections through
# RAMP to see what gives first. A run with any non-2xx answer, socket error, or request
# limited per instance because the shared limiter failed (kamiyo_rate_limit_fallbacks_total
# rose) is reported INVALID, not as throughput.
#
# Environment (defaults): INCIDENTS=100000 SEED=42 INSTANCES="1 2 4" POOL=8 LIMIT_POOL=8
# (rate_limit.pool_size: the shared limiter's direct sessions per instance) BOUNCER_POOL=20
# CONNECTIONS=64 THREADS=2 DURATION=15s WARMUP=3s RAMP="16 64 256 1024" AUTH_KEYS=128
# PRIMARY_PORT=25432 REPLICA_PORT=25433 BOUNCER_PORT=26432 LB_PORT=28080 FIRST_PORT=28081
# MAX_CONNECTIONS=100 (the primary's max_connections) WORK_DIR=/tmp/kamiyo-deploy
# SRC_DIR=<this repository> CARGO_TARGET_DIR=/tmp/bench-target BIN_DIR=<unset: build>
# OUT_DIR=/tmp/kamiyo-deploy-results/<UTC time> PG_BIN=/usr/lib/postgresql/15/bin
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INCIDENTS=${INCIDENTS:-100000}
SEED=${SEED:-42}
INSTANCES=${INSTANCES:-"1 2 4"}
POOL=${POOL:-8}
LIMIT_POOL=${LIMIT_POOL:-8}
BOUNCER_POOL=${BOUNCER_POOL:-20}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
RAMP=${RAMP:-"16 64 256 1024"}
AUTH_KEYS=${AUTH_KEYS:-128}
PRIMARY_PORT=${PRIMARY_PORT:-25432}
REPLICA_PORT=${REPLICA_PORT:-25433}
BOUNCER_PORT=${BOUNCER_PORT:-26432}
LB_PORT=${LB_PORT:-28080}
FIRST_PORT=${FIRST_PORT:-28081}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-100}
WORK_DIR=${WORK_DIR:-/tmp/kamiyo-deploy}
SRC_DIR=${SRC_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
OUT_DIR=${OUT_DIR:-/tmp/kamiyo-deploy-results/$(date -u +%Y%m%dT%H%M%SZ)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PATH_A="/api/exploits?limit=50"
METRICS_TOKEN=deploy-bench-metrics-token-0123456789abcdef
export BENCH_LUA_DIR=$BENCH_DIR

log() { echo "deploy.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in wrk haproxy jq curl psql; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install wrk haproxy jq curl postgresql-client)"
done
[[ -x /usr/sbin/pgbouncer ]] || die "pgbouncer is missing (Debian: apt-get install pgbouncer)"
[[ -x "$PG_BIN/initdb" ]] || die "no PostgreSQL server binaries in $PG_BIN (set PG_BIN)"
id postgres >/dev/null 2>&1 || die "the OS user postgres is missing (PostgreSQL and PgBouncer refuse to run as root)"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$OUT_DIR"
if [[ -n "${BIN_DIR:-}" ]]; then
  KAMIYO=$BIN_DIR/kamiyo; KAMIYO_BENCH=$BIN_DIR/kamiyo-bench
else
  log "building release binaries into $CARGO_TARGET_DIR"
  (cd "$SRC_DIR" && cargo build --release -q -p kamiyo -p kamiyo-bench)
  KAMIYO=$CARGO_TARGET_DIR/release/kamiyo; KAMIYO_BENCH=$CARGO_TARGET_DIR/release/kamiyo-bench
fi

# --- processes ----------------------------------------------------------------------------
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -d "$WORK_DIR/replica" ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK_DIR/replica" -m fast stop >/dev/null 2>&1 || true
  [[ -d "$WORK_DIR/primary" ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK_DIR/primary" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL: a primary and a streaming replica --------------------------------------------
rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"
chown postgres "$WORK_DIR" 2>/dev/null || true
log "primary on $PRIMARY_PORT, replica on $REPLICA_PORT (max_connections $MAX_CONNECTIONS)"
as_pg "$PG_BIN/initdb" -D "$WORK_DIR/primary" -U postgres --auth=trust --locale=C.UTF-8 >"$OUT_DIR/initdb.log"
cat >>"$WORK_DIR/primary/postgresql.conf" <<EOF
port = $PRIMARY_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK_DIR'
max_connections = $MAX_CONNECTIONS
wal_level = replica
max_wal_senders = 4
shared_buffers = 256MB
EOF
echo "host replication postgres 127.0.0.1/32 trust" >>"$WORK_DIR/primary/pg_hba.conf"
as_pg "$PG_BIN/pg_ctl" -D "$WORK_DIR/primary" -l "$WORK_DIR/primary.log" -w start >/dev/null
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$WORK_DIR/replica" -R -X stream
sed -i "s/^port = $PRIMARY_PORT/port = $REPLICA_PORT/" "$WORK_DIR/replica/postgresql.conf"
as_pg "$PG_BIN/pg_ctl" -D "$WORK_DIR/replica" -l "$WORK_DIR/replica.log" -w start >/dev/null

PRIMARY=postgres://postgres@127.0.0.1:$PRIMARY_PORT/kamiyo
REPLICA=postgres://postgres@127.0.0.1:$REPLICA_PORT/kamiyo
BOUNCED=postgres://postgres@127.0.0.1:$BOUNCER_PORT/kamiyo
psql "postgres://postgres@127.0.0.1:$PRIMARY_PORT/postgres" -XAqc "CREATE DATABASE kamiyo"
# What the service's sessions would get as start-up options, on the role instead: PgBouncer
# 1.18 refuses the `options` parameter (docs/DEPLOYMENT.md).
psql "$PRIMARY" -XAqc "ALTER ROLE postgres SET statement_timeout = '10s'; \
  ALTER ROLE postgres SET idle_in_transaction_session_timeout = '30s'; \
  ALTER ROLE postgres SET max_parallel_workers_per_gather = 0"

log "seeding $INCIDENTS incidents"
"$KAMIYO" --database-url "$PRIMARY" migrate >"$OUT_DIR/migrate.log" 2>&1
"$KAMIYO_BENCH" seed --database-url "$PRIMARY" --incidents "$INCIDENTS" --seed "$SEED" >"$OUT_DIR/seed.json"
psql "$PRIMARY" -XAqc "ANALYZE"

BENCH_USER=bench-deploy@kamiyo.invalid
"$KAMIYO" --database-url "$PRIMARY" user create --email "$BENCH_USER" --tier enterprise >/dev/null 2>&1
export BENCH_KEYS_FILE=$OUT_DIR/keys.txt
: >"$BENCH_KEYS_FILE"
log "creating $AUTH_KEYS API keys"
for i in $(seq "$AUTH_KEYS"); do
  "$KAMIYO" --database-url "$PRIMARY" key create --user "$BENCH_USER" --name "deploy-$i" 2>/dev/null >>"$BENCH_KEYS_FILE"
done

# --- PgBouncer ----------------------------------------------------------------------------------
mkdir -p "$WORK_DIR/pgbouncer"
cat >"$WORK_DIR/pgbouncer/pgbouncer.ini" <<EOF
[databases]
kamiyo = host=127.0.0.1 port=$PRIMARY_PORT dbname=kamiyo
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK_DIR/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = $BOUNCER_POOL
max_client_conn = 4000
server_reset_query =
logfile = $WORK_DIR/pgbouncer/pgbouncer.log
EOF
echo '"postgres" ""' >"$WORK_DIR/pgbouncer/userlist.txt"
chown -R postgres "$WORK_DIR/pgbouncer" 2>/dev/null || true
if [[ $(id -u) == 0 ]]; then
  /usr/sbin/pgbouncer -u postgres "$WORK_DIR/pgbouncer/pgbouncer.ini" &
else
  /usr/sbin/pgbouncer "$WORK_DIR/pgbouncer/pgbouncer.ini" &
fi
PIDS+=($!)
for _ in $(seq 100); do psql "$BOUNCED" -XAtqc "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done

# --- instances and the load balancer -----------------------------------------------------------
INSTANCE_PIDS=()
LB_PID=
start_instances() {
  local n=$1 port
  for i in $(seq "$n"); do
    port=$((FIRST_PORT + i - 1))
    env RUST_LOG=warn \
      KAMIYO_DATABASE_TRANSACTION_POOLING=true KAMIYO_DATABASE_DIRECT_URL="$PRIMARY" \
      KAMIYO_DATABASE_READ_URL="$REPLICA" KAMIYO_DATABASE_POOL_MAX_SIZE="$POOL" \
      KAMIYO_RATE_LIMIT_BACKEND=postgres KAMIYO_RATE_LIMIT_POOL_SIZE="$LIMIT_POOL" \
      KAMIYO_ALERTS_ENABLED=false KAMIYO_WEB_ENABLED=false \
      KAMIYO_SERVER_METRICS_TOKEN="$METRICS_TOKEN" \
      "$KAMIYO" --database-url "$BOUNCED" serve --no-migrate --no-fetch --listen "127.0.0.1:$port" \
      >"$OUT_DIR/instance-$n-$i.log" 2>&1 &
    INSTANCE_PIDS+=($!)
  done
  for i in $(seq "$n"); do
    port=$((FIRST_PORT + i - 1))
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" || die "instance $i did not start: $(tail -n 5 "$OUT_DIR/instance-$n-$i.log")"
  done
  {
    echo "global"; echo "  maxconn 8000"
    echo "defaults"; echo "  mode http"; echo "  timeout connect 5s"; echo "  timeout client 60s"; echo "  timeout server 60s"
    echo "frontend api"; echo "  bind 127.0.0.1:$LB_PORT"; echo "  default_backend kamiyo"
    echo "backend kamiyo"; echo "  balance roundrobin"; echo "  http-reuse always"
    for i in $(seq "$n"); do echo "  server k$i 127.0.0.1:$((FIRST_PORT + i - 1)) maxconn 512"; done
  } >"$WORK_DIR/haproxy-$n.cfg"
  haproxy -f "$WORK_DIR/haproxy-$n.cfg" -db >"$OUT_DIR/haproxy-$n.log" 2>&1 &
  LB_PID=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$LB_PORT/healthz" 2>/dev/null && break; sleep 0.1; done
}
stop_instances() {
  [[ -n "$LB_PID" ]] && { kill -TERM "$LB_PID" 2>/dev/null || true; wait "$LB_PID" 2>/dev/null || true; }
  LB_PID=
  for pid in "${INSTANCE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${INSTANCE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  INSTANCE_PIDS=()
}
trap 'stop_instances; cleanup' EXIT

sessions() { psql "$1" -XAtqc "SELECT count(*) FROM pg_stat_activity WHERE datname = 'kamiyo'" 2>/dev/null || echo null; }

# Requests the running instances limited on their own buckets because the shared
# limiter failed, summed: a run during which it rose did not measure shared limits.
fallbacks() {
  local total=0 port n
  for port in $(seq "$FIRST_PORT" $((FIRST_PORT + ${#INSTANCE_PIDS[@]} - 1))); do
    n=$(curl -fsS -H "Authorization: Bearer $METRICS_TOKEN" "http://127.0.0.1:$port/metrics" \
      | awk '/^kamiyo_rate_limit_fallbacks_total/ { print $2 }' | head -n 1)
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

# measure N CONNECTIONS: one JSON line.
measure() {
  local n=$1 conns=$2 out=$OUT_DIR/wrk-$1-$2.txt
  timeout 120 wrk -t"$THREADS" -c"$conns" -d"$WARMUP" -s "$BENCH_DIR/keys.lua" "http://127.0.0.1:$LB_PORT$PATH_A" >/dev/null 2>&1 || true
  local secs=${DURATION%s} primary_peak=0 replica_peak=0 p r f0 f1
  f0=$(fallbacks)
  timeout 180 wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout 10s --latency \
    -s "$BENCH_DIR/keys.lua" "http://127.0.0.1:$LB_PORT$PATH_A" >"$out" &
  local wrk_pid=$!
  for _ in $(seq "$secs"); do
    sleep 1
    p=$(sessions "$PRIMARY"); r=$(sessions "$REPLICA")
    [[ "$p" =~ ^[0-9]+$ && "$p" -gt "$primary_peak" ]] && primary_peak=$p
    [[ "$r" =~ ^[0-9]+$ && "$r" -gt "$replica_peak" ]] && replica_peak=$r
  done
  wait "$wrk_pid" || true
  f1=$(fallbacks)
  grep '^JSON ' "$out" | sed 's/^JSON //' | jq -c --argjson n "$n" --argjson c "$conns" \
    --argjson pp "$primary_peak" --argjson rp "$replica_peak" --argjson fb $((f1 - f0)) \
    '. + {instances: $n, connections: $c, primary_sessions_peak: $pp, replica_sessions_peak: $rp,
          limiter_fallbacks: $fb,
          valid: (.non_2xx == 0 and .connect_errors == 0 and .read_errors == 0 and .write_errors == 0
                  and .timeouts == 0 and $fb == 0)}'
}

: >"$OUT_DIR/results.jsonl"
max_n=1
for n in $INSTANCES; do
  log "$n instance(s) behind HAProxy: $CONNECTIONS connections for $DURATION"
  start_instances "$n"
  measure "$n" "$CONNECTIONS" | tee -a "$OUT_DIR/results.jsonl" >&2
  stop_instances
  max_n=$n
done
log "load ramp with $max_n instances: $RAMP connections"
start_instances "$max_n"
for conns in $RAMP; do
  measure "$max_n" "$conns" | tee -a "$OUT_DIR/results.jsonl" >&2
done
curl -fsS -H "Authorization: Bearer $(head -n 1 "$BENCH_KEYS_FILE")" \
  "http://127.0.0.1:$FIRST_PORT/api/health" >"$OUT_DIR/health.json" || true
stop_instances

echo
echo "| instances | connections | req/s | p50 ms | p99 ms | non-2xx | socket errors | limiter fallbacks | sessions on primary (peak) | on replica (peak) | valid |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
jq -r '"| \(.instances) | \(.connections) | \(if .valid then (.rps|round|tostring) else "INVALID (\(.rps|round))" end) | \(.p50_ms) | \(.p99_ms) | \(.non_2xx) | \(.connect_errors + .read_errors + .write_errors + .timeouts) | \(.limiter_fallbacks) | \(.primary_sessions_peak) | \(.replica_sessions_peak) | \(.valid) |"' \
  "$OUT_DIR/results.jsonl"
echo
log "results in $OUT_DIR"
