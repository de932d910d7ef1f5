#!/usr/bin/env bash
# The stats latencies of BENCHMARKS.md (section 2, "Stats on PostgreSQL"): single
# requests to /api/stats and its breakdowns, one after the other, on 100,000 seeded
# incidents, with an enterprise API key; prints the median and the largest of REQUESTS
# requests per endpoint.
#
#   bench/stats.sh [ADMIN_URL]
#
# ADMIN_URL defaults to postgres://root@127.0.0.1:5432/postgres (no query string); the
# database SCRATCH_DB is dropped, created, migrated and seeded with `kamiyo-bench seed`.
# Environment (defaults): INCIDENTS=100000 REQUESTS=7 PORT=18081 SCRATCH_DB=kamiyo_stats_bench
# BIN_DIR=<unset: build this repository in release mode; set: use BIN_DIR/kamiyo and
# BIN_DIR/kamiyo-bench as they are>
# KAMIYO_* variables reach the server, e.g. KAMIYO_SERVER_TOTAL_CACHE_TTL=0s to measure
# without the cache. For an older commit's figures, build it in a worktree and point
# BIN_DIR at its release directory.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$BENCH_DIR/.." && pwd)
ADMIN_URL=${1:-postgres://root@127.0.0.1:5432/postgres}
INCIDENTS=${INCIDENTS:-100000}
REQUESTS=${REQUESTS:-7}
PORT=${PORT:-18081}
SCRATCH_DB=${SCRATCH_DB:-kamiyo_stats_bench}
if [[ -z "${BIN_DIR:-}" ]]; then
    (cd "$SRC_DIR" && cargo build --release -q -p kamiyo -p kamiyo-bench)
    BIN_DIR=${CARGO_TARGET_DIR:-$SRC_DIR/target}/release
fi
kamiyo=$BIN_DIR/kamiyo
kamiyo_bench=$BIN_DIR/kamiyo-bench
export DATABASE_URL=${ADMIN_URL%/*}/$SCRATCH_DB
LOG=/tmp/kamiyo-stats-bench.log

psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $SCRATCH_DB" -c "CREATE DATABASE $SCRATCH_DB"
"$kamiyo_bench" seed --incidents "$INCIDENTS" > "$LOG" 2>&1
"$kamiyo" user create --email stats-bench@kamiyo.invalid --tier enterprise >> "$LOG" 2>&1
key=$("$kamiyo" key create --user stats-bench@kamiyo.invalid --name stats 2>> "$LOG")

"$kamiyo" serve --listen "127.0.0.1:$PORT" --no-migrate --no-fetch >> "$LOG" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
    sleep 0.1
done

for endpoint in /api/stats /api/stats/by-chain /api/stats/by-month /api/stats/by-attack-type "/api/stats?days=365"; do
    for _ in $(seq "$REQUESTS"); do
        curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $key" \
            "http://127.0.0.1:$PORT$endpoint"
    done | sort -n | awk -v ep="$endpoint" '{t[NR] = $1 * 1000}
        END {printf "%-28s median %7.2f ms, max %7.2f ms (%d requests)\n", ep, t[int((NR + 1) / 2)], t[NR], NR}'
done
