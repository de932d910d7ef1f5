#!/usr/bin/env bash
# Measures the incident listing API under load (BENCHMARKS.md).
#
#   bench/api.sh [DATABASE_URL] [PORT]
#
# DATABASE_URL defaults to postgres://root@127.0.0.1:5432/kamiyo_bench (created when
# missing), PORT to 18080. Both the database and the server must be on the loopback
# interface. Steps: build release binaries, seed the database when `exploits` is empty,
# then for each pool size: start `kamiyo serve --no-migrate`, warm up, run wrk on
#   (a) GET /api/exploits?limit=50
#   (b) GET /api/exploits?chain=ethereum&min_amount=100000&from=2022-01-01&to=2023-12-31&limit=50
#   (c) (b)'s shape with a different filter drawn for each request (bench/vary.lua)
# with --latency, record the CPU used by the server, PostgreSQL, wrk and anything else,
# save the server's own per-statement statistics, stop the server. Finally capture
# EXPLAIN (ANALYZE, BUFFERS) of the four statements the endpoint runs (page and count, for
# (a) and (b)), time them alone with pgbench, and print a summary.
#
# Environment (defaults): INCIDENTS=100000 SEED=42 POOL_SIZES="8 16" THREADS=2
# CONNECTIONS=64 DURATION=20s WARMUP=5s PGBENCH_DURATION=10 PGBENCH_CLIENTS=8
# QUIET_MAX_PCT=10 QUIET_TIMEOUT=600 QUIET_BUDGET=2400 (before each measurement, wait up to
# QUIET_TIMEOUT s, and in all at most QUIET_BUDGET s, for the machine to be at most
# QUIET_MAX_PCT % busy with other work)
# SRC_DIR=<this repository> CARGO_TARGET_DIR=/tmp/bench-target
# BIN_DIR=<unset: build; set: use BIN_DIR/kamiyo and BIN_DIR/kamiyo-bench as they are>
# OUT_DIR=/tmp/kamiyo-bench-results/<UTC time>  ADMIN_URL=<DATABASE_URL with /postgres>
# COMMIT=<label for the summary; default: git rev-parse --short HEAD of SRC_DIR>
# SQL_ANALYSIS=1 (0: skip the EXPLAIN and pgbench part)  ENDPOINTS="a b c"
# AUTH_KEYS=128 (commits with access tiers: rate limits are per key, 3,000 a minute for
# enterprise, so one key cannot carry thousands of requests a second. The script creates an
# enterprise user bench-api@kamiyo.invalid and AUTH_KEYS keys with `kamiyo user create` and
# `kamiyo key create`, and the wrk scripts use them in turn (keys.lua, vary.lua); 128 keys
# stay under every limit up to 6,400 req/s. 0: anonymous requests, rate-limited)
# AUTH_TOKEN=<unset; one API key sent as a bearer token instead of AUTH_KEYS>
# Other KAMIYO_* variables in the environment reach the server (e.g. a cache setting).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DB_URL=${1:-${DATABASE_URL:-postgres://root@127.0.0.1:5432/kamiyo_bench}}
PORT=${2:-18080}
INCIDENTS=${INCIDENTS:-100000}
SEED=${SEED:-42}
POOL_SIZES=${POOL_SIZES:-"8 16"}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
PGBENCH_DURATION=${PGBENCH_DURATION:-10}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
SRC_DIR=${SRC_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
OUT_DIR=${OUT_DIR:-/tmp/kamiyo-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
BASE="http://127.0.0.1:$PORT"
PATH_A="/api/exploits?limit=50"
PATH_B="/api/exploits?chain=ethereum&min_amount=100000&from=2022-01-01&to=2023-12-31&limit=50"
# (c): (b)'s shape with 128 different filters drawn per request (bench/vary.lua).
ENDPOINTS=${ENDPOINTS:-"a b c"}
export BENCH_LUA_DIR=$BENCH_DIR
# AUTH_TOKEN: sent as `Authorization: Bearer` on every request (commits with tiers and
# rate limits serve anonymous callers a different, rate-limited listing).
AUTH=()
[[ -n "${AUTH_TOKEN:-}" ]] && AUTH=(-H "Authorization: Bearer $AUTH_TOKEN")
AUTH_KEYS=${AUTH_KEYS:-128}
# The monitor's endpoints (saved after each run) need an admin or the metrics token.
METRICS_TOKEN=${KAMIYO_SERVER_METRICS_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")}
# The values the API binds for (b): chain slug, Usd text, RFC 3339 bounds (from is the
# start of the day, to its last millisecond; kamiyo-api/src/params.rs).
B_CHAIN=ethereum
B_MIN=100000.00
B_FROM=2022-01-01T00:00:00+00:00
B_TO=2023-12-31T23:59:59.999+00:00

die() { echo "api.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
[[ "$AUTH_KEYS" =~ ^[0-9]+$ ]] || die "AUTH_KEYS must be a number"

for tool in wrk psql curl jq; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y wrk postgresql-client curl jq)"
done

# Loopback only, for the database and for the load target.
rest=${DB_URL#*://}
rest=${rest##*@}
host=${rest%%[:/?]*}
case "$host" in
  127.0.0.1 | localhost | "[::1]") ;;
  *) die "the database must be on the loopback interface, not ${host:-a socket}" ;;
esac
[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number"
DB_NAME=${rest#*/}
DB_NAME=${DB_NAME%%\?*}
[[ "$DB_NAME" =~ ^[A-Za-z0-9_]+$ ]] || die "cannot read a database name from the URL"
ADMIN_URL=${ADMIN_URL:-${DB_URL%%/"$DB_NAME"*}/postgres}

mkdir -p "$OUT_DIR"
log "results in $OUT_DIR"

# --- binaries --------------------------------------------------------------------------
if [[ -n "${BIN_DIR:-}" ]]; then
  KAMIYO=$BIN_DIR/kamiyo
  KAMIYO_BENCH=$BIN_DIR/kamiyo-bench
else
  log "building release binaries in $SRC_DIR (target $CARGO_TARGET_DIR)"
  (cd "$SRC_DIR" && cargo build --release -p kamiyo -p kamiyo-bench) >&2
  KAMIYO=$CARGO_TARGET_DIR/release/kamiyo
  KAMIYO_BENCH=$CARGO_TARGET_DIR/release/kamiyo-bench
fi
[[ -x "$KAMIYO" && -x "$KAMIYO_BENCH" ]] || die "missing binaries: $KAMIYO, $KAMIYO_BENCH"

# --- CPU accounting (ticks from /proc) ----------------------------------------------------
TICKS=$(getconf CLK_TCK)
NCPU=$(nproc)
QUIET_MAX_PCT=${QUIET_MAX_PCT:-10}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-600}
QUIET_BUDGET=${QUIET_BUDGET:-2400}
cpu_busy_total() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
cpu_of_pid() { awk '{print $14+$15}' "/proc/$1/stat"; }
children_ticks() {
  # User+system time of the waited-for children of this shell, in ticks. `times` must run
  # in this process (a $(...) subshell would report its own, empty, children).
  times >"$OUT_DIR/.times"
  tail -n 1 "$OUT_DIR/.times" | awk -v tk="$TICKS" '{
    n = split($0, f, " "); s = 0
    for (i = 1; i <= n; i++) { split(f[i], p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] }
    printf "%d\n", s * tk }'
}
# PostgreSQL's CPU: every live postgres process, plus what the postmaster reaped (parallel
# workers and sessions that ended), read from its children's times.
POSTMASTER_PID=$(head -n 1 "$(psql "$ADMIN_URL" -XAtc 'SHOW data_directory')/postmaster.pid" 2>/dev/null || echo 0)
pg_snapshot() {
  # A process may exit between the glob and the read (parallel workers come and go).
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk -v pm="$POSTMASTER_PID" '$2 == "(postgres)" { t = $14 + $15; if ($1 == pm) t += $16 + $17; print $1, t }'
}
pg_ticks_between() {
  awk 'NR == FNR { a[$1] = $2; next } { d += $2 - (($1 in a) ? a[$1] : 0) } END { print d + 0 }' "$1" "$2"
}
# Percent of the machine busy over 2 s.
machine_busy_pct() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  sleep 2
  read -r b1 t1 < <(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  echo $((100 * (b1 - b0) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
# Waits until other work on the machine (builds, tests) leaves it at most QUIET_MAX_PCT %
# busy: a 2-core box shared with a compiler measures the compiler. One wait lasts at most
# QUIET_TIMEOUT s and all waits together at most QUIET_BUDGET s; then it measures anyway
# (the "CPU other" column shows how much the rest of the machine took).
QUIET_LEFT=$QUIET_BUDGET
wait_for_quiet() {
  local limit=$((QUIET_TIMEOUT < QUIET_LEFT ? QUIET_TIMEOUT : QUIET_LEFT)) started=$SECONDS pct
  while :; do
    pct=$(machine_busy_pct)
    if ((pct <= QUIET_MAX_PCT)); then break; fi
    if ((SECONDS - started >= limit)); then
      log "machine still ${pct}% busy with other work: measuring anyway (see CPU other)"
      break
    fi
    log "machine ${pct}% busy with other work; waiting for it to settle"
    sleep 10
  done
  QUIET_LEFT=$((QUIET_LEFT - (SECONDS - started)))
  ((QUIET_LEFT > 0)) || QUIET_LEFT=0
  QUIET_PCT=$pct
}

# --- database ----------------------------------------------------------------------------
if [[ -z $(psql "$ADMIN_URL" -XAtc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
  log "creating database $DB_NAME"
  psql "$ADMIN_URL" -XqAtc "CREATE DATABASE $DB_NAME" >/dev/null
fi
existing=$(psql "$DB_URL" -XAtc "SELECT count(*) FROM exploits" 2>/dev/null || echo 0)
if [[ "$existing" == 0 ]]; then
  wait_for_quiet
  log "seeding $INCIDENTS incidents (seed $SEED)"
  "$KAMIYO_BENCH" seed --database-url "$DB_URL" --incidents "$INCIDENTS" --seed "$SEED" \
    | tee "$OUT_DIR/seed.json" >&2
else
  log "exploits already has $existing rows: not seeding"
fi
INCIDENT_ROWS=$(psql "$DB_URL" -XAtc "SELECT count(*) FROM exploits")

# --- API keys ----------------------------------------------------------------------------
# Fresh keys for every run (a key is printed once); the user is created on the first run.
# The CLI migrates the database like `serve` would: run it with the binary being measured.
export BENCH_KEYS_FILE=
if [[ -z "${AUTH_TOKEN:-}" && "$AUTH_KEYS" -gt 0 ]]; then
  BENCH_USER=bench-api@kamiyo.invalid
  if [[ -z $(psql "$DB_URL" -XAtc "SELECT 1 FROM users WHERE email = '$BENCH_USER'") ]]; then
    "$KAMIYO" --database-url "$DB_URL" user create --email "$BENCH_USER" --tier enterprise >&2
  fi
  BENCH_KEYS_FILE=$OUT_DIR/keys.txt
  : >"$BENCH_KEYS_FILE"
  log "creating $AUTH_KEYS API keys for $BENCH_USER"
  for i in $(seq "$AUTH_KEYS"); do
    "$KAMIYO" --database-url "$DB_URL" key create --user "$BENCH_USER" --name "bench-$i" \
      2>/dev/null >>"$BENCH_KEYS_FILE" || die "kamiyo key create failed"
  done
  AUTH=(-H "Authorization: Bearer $(head -n 1 "$BENCH_KEYS_FILE")")
fi

# --- server ------------------------------------------------------------------------------
SERVER_PID=
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
  fi
  SERVER_PID=
}
trap stop_server EXIT
trap 'exit 130' INT TERM

start_server() {
  local pool=$1
  if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then
    die "something already answers on $BASE"
  fi
  env RUST_LOG=warn KAMIYO_DATABASE_POOL_MAX_SIZE="$pool" KAMIYO_SERVER_METRICS_TOKEN="$METRICS_TOKEN" \
    "$KAMIYO" --database-url "$DB_URL" serve --no-migrate --no-fetch --listen "127.0.0.1:$PORT" \
    >"$OUT_DIR/server-pool$pool.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -n 5 "$OUT_DIR/server-pool$pool.log")"
    sleep 0.1
  done
  die "the server did not answer /healthz within 10 s"
}

# run_wrk NAME PATH POOL: warm-up, then the measured run; prints the JSON line with CPU shares.
run_wrk() {
  local name=$1 path=$2 pool=$3 out script=$BENCH_DIR/report.lua target
  [[ -n "$BENCH_KEYS_FILE" ]] && script=$BENCH_DIR/keys.lua
  out="$OUT_DIR/wrk-$name-pool$pool.txt"
  target=$BASE$path
  if [[ "$name" == c ]]; then
    script=$BENCH_DIR/vary.lua
    target=$BASE/
  fi
  curl -fsS "${AUTH[@]}" "$BASE$path" | jq -c '{total, items: (.items | length), next_cursor: (.next_cursor != null)}' \
    >"$OUT_DIR/response-$name.json" || die "GET $path failed"
  timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${AUTH[@]}" -s "$script" "$target" \
    >"$OUT_DIR/warmup-$name-pool$pool.txt"
  local busy0 srv0 kids0 busy1 srv1 kids1 pg
  children_ticks >"$OUT_DIR/.kids0"
  pg_snapshot >"$OUT_DIR/.pg0"
  busy0=$(cpu_busy_total); srv0=$(cpu_of_pid "$SERVER_PID"); kids0=$(cat "$OUT_DIR/.kids0")
  local t0=$EPOCHREALTIME t1 load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency \
    "${AUTH[@]}" -s "$script" "$target" >"$out"
  busy1=$(cpu_busy_total); srv1=$(cpu_of_pid "$SERVER_PID"); t1=$EPOCHREALTIME
  pg_snapshot >"$OUT_DIR/.pg1"
  children_ticks >"$OUT_DIR/.kids1"; kids1=$(cat "$OUT_DIR/.kids1")
  pg=$(pg_ticks_between "$OUT_DIR/.pg0" "$OUT_DIR/.pg1")
  # CPU shares are over the wall-clock window of the measured run.
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  grep '^JSON ' "$out" | sed 's/^JSON //' | jq -c \
    --arg name "$name" --argjson pool "$pool" --argjson secs "$secs" --argjson tk "$TICKS" \
    --argjson ncpu "$NCPU" --argjson busy $((busy1 - busy0)) --argjson srv $((srv1 - srv0)) \
    --argjson wrk $((kids1 - kids0)) --argjson pg "$pg" --argjson quiet "$QUIET_PCT" --arg load "$load" \
    'def pct(t): t / $tk / $secs / $ncpu * 100 | round;
     . + {endpoint: $name, pool: $pool, machine_busy_pct_before: $quiet, loadavg_before: $load,
          cpu_pct_of_machine: {
            total: pct($busy), kamiyo: pct($srv), postgres: pct($pg), wrk: pct($wrk),
            other: pct($busy - $srv - $pg - $wrk)}}'
}

: >"$OUT_DIR/results.jsonl"
for pool in $POOL_SIZES; do
  log "pool_max_size=$pool: starting kamiyo serve on $BASE"
  start_server "$pool"
  for name in $ENDPOINTS; do
    case $name in
      a) path=$PATH_A ;;
      b | c) path=$PATH_B ;;
      *) die "unknown endpoint $name (a, b or c)" ;;
    esac
    label=$path
    [[ "$name" == c ]] && label="(b) with 128 filters drawn per request"
    log "pool $pool, ($name) $label: warm-up $WARMUP, then $DURATION with $THREADS threads x $CONNECTIONS connections"
    wait_for_quiet
    run_wrk "$name" "$path" "$pool" | tee -a "$OUT_DIR/results.jsonl" >&2
  done
  curl -fsS -H "Authorization: Bearer $METRICS_TOKEN" "$BASE/api/metrics/queries?limit=10&sort=total" >"$OUT_DIR/queries-pool$pool.json"
  curl -fsS -H "Authorization: Bearer $METRICS_TOKEN" "$BASE/api/metrics/database" >"$OUT_DIR/database-pool$pool.json"
  stop_server
done

# --- EXPLAIN and the statements alone ------------------------------------------------------
# The SQL files use pgbench's :name variables; for EXPLAIN they become $1..$4 of a
# prepared statement with text parameters, as the server binds them.
to_prepared() {
  sed -e '/^--/d' -e 's/;$//' -e 's/:chain/$1/; s/:min_amount/$2/; s/:from/$3/; s/:to/$4/' "$BENCH_DIR/sql/$1.sql"
}
explain_file=$OUT_DIR/explain.txt
if [[ "${SQL_ANALYSIS:-1}" == 1 ]]; then
  wait_for_quiet
  {
    echo "-- PostgreSQL: $(psql "$DB_URL" -XAtc 'SHOW server_version')"
    for q in list_a count_a; do
      echo; echo "-- $q"
      psql "$DB_URL" -X -c "PREPARE $q AS $(to_prepared "$q")" \
        -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE $q" -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE $q"
    done
    args="('$B_CHAIN', '$B_MIN', '$B_FROM', '$B_TO')"
    for q in list_b count_b; do
      echo; echo "-- $q: custom plan (planned with the request's values: what an unprepared statement always gets)"
      psql "$DB_URL" -X -c "PREPARE $q(text, text, text, text) AS $(to_prepared "$q")" \
        -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE $q$args" -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE $q$args"
      echo; echo "-- $q: generic plan (what a cached prepared statement may switch to after 5 executions)"
      psql "$DB_URL" -X -c "SET plan_cache_mode = force_generic_plan" \
        -c "PREPARE $q(text, text, text, text) AS $(to_prepared "$q")" \
        -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE $q$args" -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE $q$args"
    done
  } >"$explain_file" 2>&1
  log "EXPLAIN output in $explain_file"
fi

: >"$OUT_DIR/pgbench.jsonl"
if [[ "${SQL_ANALYSIS:-1}" == 1 ]] && command -v pgbench >/dev/null; then
  wait_for_quiet
  for mode in extended prepared; do
    for q in list_a count_a list_b count_b; do
      log "pgbench $q -M $mode: $PGBENCH_CLIENTS clients, ${PGBENCH_DURATION}s"
      timeout 120 pgbench -n -M "$mode" -c "$PGBENCH_CLIENTS" -j "$THREADS" -T "$PGBENCH_DURATION" \
        -D chain="$B_CHAIN" -D min_amount="$B_MIN" -D from="$B_FROM" -D to="$B_TO" \
        -f "$BENCH_DIR/sql/$q.sql" "$DB_URL" >"$OUT_DIR/pgbench-$q-$mode.txt" 2>&1 \
        || die "pgbench $q failed: $(tail -n 3 "$OUT_DIR/pgbench-$q-$mode.txt")"
      tps=$(awk '/^tps = /{print $3}' "$OUT_DIR/pgbench-$q-$mode.txt")
      lat=$(awk '/^latency average = /{print $4}' "$OUT_DIR/pgbench-$q-$mode.txt")
      echo "{\"statement\":\"$q\",\"mode\":\"$mode\",\"clients\":$PGBENCH_CLIENTS,\"tps\":$tps,\"latency_avg_ms\":$lat}" \
        | tee -a "$OUT_DIR/pgbench.jsonl" >&2
    done
  done
fi

# --- summary ----------------------------------------------------------------------------
{
  echo "# kamiyo API benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "commit ${COMMIT:-$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)}," \
    "$INCIDENT_ROWS incidents, $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB," \
    "PostgreSQL $(psql "$DB_URL" -XAtc 'SHOW server_version')," \
    "wrk -t$THREADS -c$CONNECTIONS -d$DURATION (after $WARMUP warm-up)"
  echo
  echo "CPU columns: percent of the whole machine ($NCPU CPUs) during the measured run; other = anything else (should be ~0)."
  echo
  echo "| endpoint | pool | req/s | p50 ms | p99 ms | non-2xx | socket errors | CPU kamiyo | CPU postgres | CPU wrk | CPU other | load avg before |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  jq -r '"| (\(.endpoint)) | \(.pool) | \(.rps | round) | \(.p50_ms * 100 | round / 100) | \(.p99_ms * 100 | round / 100) | \(.non_2xx) | \(.connect_errors + .read_errors + .write_errors + .timeouts) | \(.cpu_pct_of_machine.kamiyo) | \(.cpu_pct_of_machine.postgres) | \(.cpu_pct_of_machine.wrk) | \(.cpu_pct_of_machine.other) | \(.loadavg_before) |"' \
    "$OUT_DIR/results.jsonl"
  if [[ -s "$OUT_DIR/pgbench.jsonl" ]]; then
    echo
    echo "Statements alone (pgbench, $PGBENCH_CLIENTS clients, ${PGBENCH_DURATION}s):"
    echo
    echo "| statement | protocol | tps | mean latency ms |"
    echo "| --- | --- | --- | --- |"
    jq -r '"| \(.statement) | \(.mode) | \(.tps | round) | \(.latency_avg_ms) |"' "$OUT_DIR/pgbench.jsonl"
  fi
  echo
  echo "Targets: (a) >= 5000 req/s, (b) >= 3000 req/s. (c) has no target: (b) with 128 filters drawn per request."
  echo "Raw output: $OUT_DIR (wrk-*.txt, explain.txt, pgbench-*.txt, queries-pool*.json)"
} | tee "$OUT_DIR/summary.md"
