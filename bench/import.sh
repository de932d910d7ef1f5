#!/usr/bin/env bash
# The import figure of BENCHMARKS.md (section 1): `kamiyo import` of a JSONL file into an
# empty, migrated database, REPEAT times, each into a fresh database: PostgreSQL by
# default, or the embedded SQLite file with BACKEND=sqlite.
#
#   bench/import.sh [ADMIN_URL]
#   BACKEND=sqlite bench/import.sh
#
# ADMIN_URL defaults to postgres://root@127.0.0.1:5432/postgres (a URL without a query
# string: the scratch database's URL is ADMIN_URL with its last path part replaced); the
# scratch database SCRATCH_DB is dropped and created on that server before each run. Steps: build kamiyo in
# release mode; write the data file with bench/make_import_file.py when it is missing;
# then per run: fresh database, `kamiyo migrate`, `kamiyo import FILE --json`, and one
# line with the wall time, incidents/s, records/s and the load average before the run.
# Ends with the median over the runs.
#
# Environment (defaults): REPEAT=5 INCIDENTS=100000 STREAMS and BATCH_SIZE unset (the
# import's own defaults for the backend: 2 streams of 1000 on PostgreSQL, 1 of 10000 on
# SQLite; set either to pass it as --streams/--batch-size)
# FILE=/tmp/import<INCIDENTS>.jsonl SCRATCH_DB=kamiyo_import_bench
# SRC_DIR=<this repository> CARGO_TARGET_DIR=<SRC_DIR>/target
# BACKEND=postgres (or sqlite: the file SQLITE_FILE=/tmp/kamiyo_import_bench.db, deleted
# with its WAL before each run; ADMIN_URL is then unused)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ADMIN_URL=${1:-postgres://root@127.0.0.1:5432/postgres}
REPEAT=${REPEAT:-5}
INCIDENTS=${INCIDENTS:-100000}
STREAMS=${STREAMS:-}
BATCH_SIZE=${BATCH_SIZE:-}
SHAPE=()
[[ -n $STREAMS ]] && SHAPE+=(--streams "$STREAMS")
[[ -n $BATCH_SIZE ]] && SHAPE+=(--batch-size "$BATCH_SIZE")
FILE=${FILE:-/tmp/import${INCIDENTS}.jsonl}
SCRATCH_DB=${SCRATCH_DB:-kamiyo_import_bench}
BACKEND=${BACKEND:-postgres}
SQLITE_FILE=${SQLITE_FILE:-/tmp/kamiyo_import_bench.db}
SRC_DIR=${SRC_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SRC_DIR/target}

(cd "$SRC_DIR" && cargo build --release -q -p kamiyo)
KAMIYO=$CARGO_TARGET_DIR/release/kamiyo
if [[ ! -s $FILE ]]; then
    python3 "$BENCH_DIR/make_import_file.py" --incidents "$INCIDENTS" --out "$FILE"
fi
records=$(wc -l < "$FILE")
case $BACKEND in
    postgres) DB_URL=${ADMIN_URL%/*}/$SCRATCH_DB ;;
    sqlite) DB_URL=sqlite://$SQLITE_FILE ;;
    *) echo "BACKEND must be postgres or sqlite, not $BACKEND" >&2; exit 2 ;;
esac

rates=()
for run in $(seq 1 "$REPEAT"); do
    if [[ $BACKEND == sqlite ]]; then
        rm -f "$SQLITE_FILE" "$SQLITE_FILE-wal" "$SQLITE_FILE-shm"
    else
        psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $SCRATCH_DB" -c "CREATE DATABASE $SCRATCH_DB"
    fi
    if ! DATABASE_URL=$DB_URL "$KAMIYO" migrate > /tmp/kamiyo-import-bench-migrate.log 2>&1; then
        cat /tmp/kamiyo-import-bench-migrate.log >&2
        exit 1
    fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    if ! report=$(DATABASE_URL=$DB_URL "$KAMIYO" import "$FILE" --format jsonl --json \
        "${SHAPE[@]}" 2> /tmp/kamiyo-import-bench.log); then
        tail -20 /tmp/kamiyo-import-bench.log >&2
        exit 1
    fi
    end=$(date +%s.%N)
    inserted=$(printf '%s' "$report" | python3 -c 'import json,sys; print(json.load(sys.stdin)["inserted"])')
    line=$(python3 - "$start" "$end" "$inserted" "$records" <<'EOF'
import sys
start, end, inserted, records = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
wall = end - start
print(f"{wall:.2f} {inserted / wall:.0f} {records / wall:.0f}")
EOF
)
    read -r wall rate per_record <<< "$line"
    rates+=("$rate")
    echo "run $run: ${wall} s, ${rate} incidents/s, ${per_record} records/s, inserted ${inserted}, load ${load}"
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | python3 -c 'import sys; v=[int(x) for x in sys.stdin]; print(v[len(v)//2])')
echo "median: ${median} incidents/s over ${REPEAT} runs (${BACKEND}, streams ${STREAMS:-default}, batch size ${BATCH_SIZE:-default}, ${records} records)"
