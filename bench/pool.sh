#!/usr/bin/env bash
# The pool and monitor figures of BENCHMARKS.md (section 3), with the reference the
# issue compares the pool against: pgbench running `SELECT 1` as a prepared statement
# with as many clients as the stress pool has connections.
#
#   bench/pool.sh [ADMIN_URL]
#
# ADMIN_URL defaults to postgres://root@127.0.0.1:5432/postgres; the scratch database
# SCRATCH_DB is created on that server when missing (nothing is written to it). Steps:
# build kamiyo-bench in release mode, then REPEAT times, one after the other so that load
# from elsewhere on the machine hits all of them alike:
#   (1) kamiyo-bench pool --json (per-run lines on stderr go to the log)
#   (2) pgbench -n -M prepared -c CLIENTS -j THREADS -T PGBENCH_SECONDS -f pgbench_select1.sql
#   (3) the same pgbench with the session settings Kamiyo's pool gives its sessions
#       (PGOPTIONS), which cost server time on every statement
# then kamiyo-bench monitor, and a summary: medians over the repeats, and the monitored
# throughput as a share of pgbench's.
#
# Environment (defaults): REPEAT=3 CLIENTS=16 THREADS=2 PGBENCH_SECONDS=15
# SCRATCH_DB=benchscratch POOL_ARGS="" (more `kamiyo-bench pool` flags, e.g. "--rounds 9")
# PGBENCH=<pgbench on PATH, else /usr/lib/postgresql/15/bin/pgbench>
# SRC_DIR=<this repository> CARGO_TARGET_DIR=/tmp/target-bench
# OUT_DIR=/tmp/kamiyo-pool-results/<UTC time>
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ADMIN_URL=${1:-postgres://root@127.0.0.1:5432/postgres}
REPEAT=${REPEAT:-3}
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}
SCRATCH_DB=${SCRATCH_DB:-benchscratch}
POOL_ARGS=${POOL_ARGS:-}
SRC_DIR=${SRC_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
OUT_DIR=${OUT_DIR:-/tmp/kamiyo-pool-results/$(date -u +%Y%m%dT%H%M%SZ)}
PGBENCH=${PGBENCH:-$(command -v pgbench || echo /usr/lib/postgresql/15/bin/pgbench)}
# The options PgManager::new (crates/kamiyo-db/src/postgres/manager.rs) sets with the
# default DbConfig.
KAMIYO_PGOPTIONS="-c statement_timeout=10000 -c idle_in_transaction_session_timeout=30000 \
-c max_parallel_workers_per_gather=0 -c plan_cache_mode=force_custom_plan"

for tool in jq psql "$PGBENCH"; do
    command -v "$tool" >/dev/null || { echo "pool.sh: $tool is required" >&2; exit 1; }
done
mkdir -p "$OUT_DIR"
DB_URL="${ADMIN_URL%/*}/$SCRATCH_DB"
if ! psql "$ADMIN_URL" -Atc "SELECT 1 FROM pg_database WHERE datname = '$SCRATCH_DB'" | grep -q 1; then
    psql "$ADMIN_URL" -qc "CREATE DATABASE $SCRATCH_DB"
fi

echo "building kamiyo-bench (release) ..." >&2
(cd "$SRC_DIR" && cargo build --release -q -p kamiyo-bench)
BENCH="$CARGO_TARGET_DIR/release/kamiyo-bench"

pgbench_tps() {
    "$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$PGBENCH_SECONDS" \
        -f "$BENCH_DIR/pgbench_select1.sql" "$DB_URL" 2>>"$OUT_DIR/pgbench.log" \
        | tee -a "$OUT_DIR/pgbench.log" \
        | awk '/^tps = / { print $3; exit }'
}

for i in $(seq 1 "$REPEAT"); do
    echo "repeat $i/$REPEAT: kamiyo-bench pool" >&2
    # shellcheck disable=SC2086 # POOL_ARGS is a list of flags
    "$BENCH" pool --json --database-url "$DB_URL" --stress-pool-size "$CLIENTS" $POOL_ARGS \
        >"$OUT_DIR/pool.$i.json" 2>>"$OUT_DIR/pool.log"
    echo "repeat $i/$REPEAT: pgbench" >&2
    pgbench_tps >"$OUT_DIR/pgbench.$i.tps"
    echo "repeat $i/$REPEAT: pgbench with Kamiyo's session settings" >&2
    PGOPTIONS="$KAMIYO_PGOPTIONS" pgbench_tps >"$OUT_DIR/pgbench_kamiyo_settings.$i.tps"
done
"$BENCH" monitor --json >"$OUT_DIR/monitor.json"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
pool_median() { jq -r ".$1" "$OUT_DIR"/pool.*.json | median; }

PGBENCH_TPS=$(cat "$OUT_DIR"/pgbench.*.tps | median)
PGBENCH_KAMIYO_TPS=$(cat "$OUT_DIR"/pgbench_kamiyo_settings.*.tps | median)
MONITORED=$(pool_median stress_qps_monitored)
{
    echo "results in $OUT_DIR (medians over $REPEAT repeats)"
    for key in uncontended_acquire_release_ns raw_deadpool_acquire_release_ns \
        handoff_p50_us handoff_p99_us timeout_overshoot_p50_ms timeout_overshoot_p99_ms \
        stress_qps_monitored stress_qps_unmonitored raw_deadpool_qps \
        stress_cpu_us_per_query_monitored stress_cpu_us_per_query_unmonitored \
        raw_deadpool_cpu_us_per_query stress_server_cpu_us_per_query_monitored \
        stress_server_cpu_us_per_query_unmonitored raw_deadpool_server_cpu_us_per_query \
        monitored_vs_raw_pct monitoring_overhead_pct \
        stress_errors; do
        printf '%-40s %s\n' "$key" "$(pool_median "$key")"
    done
    printf '%-40s %s\n' "pgbench_tps (-c $CLIENTS -j $THREADS)" "$PGBENCH_TPS"
    printf '%-40s %s\n' "pgbench_tps, Kamiyo's session settings" "$PGBENCH_KAMIYO_TPS"
    printf '%-40s %s\n' "monitored / pgbench (target >= 80 %)" \
        "$(awk -v m="$MONITORED" -v p="$PGBENCH_TPS" 'BEGIN { printf "%.1f %%", 100 * m / p }')"
    jq -r 'to_entries[] | "\(.key)  \(.value)"' "$OUT_DIR/monitor.json" \
        | awk '{ printf "%-40s %s\n", $1, $2 }'
} | tee "$OUT_DIR/summary.txt"
