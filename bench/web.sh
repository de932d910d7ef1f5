#!/usr/bin/env bash
# Measures the dashboard's server render time and page weight (BENCHMARKS.md, section 12).
#
#   bench/web.sh [DATABASE_URL] [PORT]
#
# DATABASE_URL defaults to postgres://root@127.0.0.1:5432/kamiyo_bench (created and seeded
# with INCIDENTS incidents when `exploits` is empty, as bench/api.sh does), PORT to 18081;
# both on loopback. Builds release binaries, starts `kamiyo serve` with anonymous visitors
# allowed to see everything (tiers.anonymous.delay = 0s, history = all, and the free
# tier's too, which may not see less: a private deployment's setting, so that every page renders all 100,000 incidents' figures) and
# request limits far above what the run sends, then for each page and each number of
# connections runs wrk (--latency, after a warm-up) and records throughput and latency.
# A run with any non-2xx answer or socket error is reported INVALID, not as throughput.
# Also records the bytes a first visit transfers (page, stylesheet, script, icon, with headers)
# and a cached visit (the page alone: the assets are immutable for a year).
#
# Environment (defaults): INCIDENTS=100000 SEED=42 CONNECTIONS="1 8 32" THREADS=2
# DURATION=15s WARMUP=3s CARGO_TARGET_DIR=/tmp/bench-target BIN_DIR=<unset: build>
# OUT_DIR=/tmp/kamiyo-bench-results/web-<UTC time>
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DB_URL=${1:-${DATABASE_URL:-postgres://root@127.0.0.1:5432/kamiyo_bench}}
PORT=${2:-18081}
INCIDENTS=${INCIDENTS:-100000}
SEED=${SEED:-42}
CONNECTIONS=${CONNECTIONS:-"1 8 32"}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
SRC_DIR=${SRC_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
OUT_DIR=${OUT_DIR:-/tmp/kamiyo-bench-results/web-$(date -u +%Y%m%dT%H%M%SZ)}
BASE="http://127.0.0.1:$PORT"
export BENCH_LUA_DIR=$BENCH_DIR

die() { echo "web.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
for tool in wrk psql curl jq; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y wrk postgresql-client curl jq)"
done
rest=${DB_URL#*://}
rest=${rest##*@}
host=${rest%%[:/?]*}
case "$host" in
  127.0.0.1 | localhost | "[::1]") ;;
  *) die "the database must be on the loopback interface, not ${host:-a socket}" ;;
esac
DB_NAME=${rest#*/}
DB_NAME=${DB_NAME%%\?*}
[[ "$DB_NAME" =~ ^[A-Za-z0-9_]+$ ]] || die "cannot read a database name from the URL"
ADMIN_URL=${ADMIN_URL:-${DB_URL%%/"$DB_NAME"*}/postgres}
mkdir -p "$OUT_DIR"
log "results in $OUT_DIR"

if [[ -n "${BIN_DIR:-}" ]]; then
  KAMIYO=$BIN_DIR/kamiyo
  KAMIYO_BENCH=$BIN_DIR/kamiyo-bench
else
  log "building release binaries (target $CARGO_TARGET_DIR)"
  (cd "$SRC_DIR" && cargo build --release -p kamiyo -p kamiyo-bench) >&2
  KAMIYO=$CARGO_TARGET_DIR/release/kamiyo
  KAMIYO_BENCH=$CARGO_TARGET_DIR/release/kamiyo-bench
fi

if [[ -z $(psql "$ADMIN_URL" -XAtc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
  psql "$ADMIN_URL" -XqAtc "CREATE DATABASE $DB_NAME" >/dev/null
fi
existing=$(psql "$DB_URL" -XAtc "SELECT count(*) FROM exploits" 2>/dev/null || echo 0)
if [[ "$existing" == 0 ]]; then
  log "seeding $INCIDENTS incidents (seed $SEED)"
  "$KAMIYO_BENCH" seed --database-url "$DB_URL" --incidents "$INCIDENTS" --seed "$SEED" >&2
fi
ROWS=$(psql "$DB_URL" -XAtc "SELECT count(*) FROM exploits")
INCIDENT_ID=$(psql "$DB_URL" -XAtc "SELECT id FROM exploits ORDER BY id OFFSET ($ROWS / 2) LIMIT 1")

log "starting kamiyo serve on $BASE ($ROWS incidents)"
KAMIYO_TIERS_ANONYMOUS_DELAY=0s KAMIYO_TIERS_ANONYMOUS_HISTORY=all \
KAMIYO_TIERS_FREE_DELAY=0s KAMIYO_TIERS_FREE_HISTORY=all \
KAMIYO_TIERS_ANONYMOUS_PER_MINUTE=1000000 KAMIYO_TIERS_ANONYMOUS_PER_HOUR=60000000 \
KAMIYO_TIERS_ANONYMOUS_PER_DAY=1440000000 KAMIYO_ALERTS_ENABLED=false \
KAMIYO_LOG_LEVEL=warn \
  "$KAMIYO" --database-url "$DB_URL" serve --no-fetch --listen "127.0.0.1:$PORT" \
  >"$OUT_DIR/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "$BASE/healthz" >/dev/null && break
  sleep 0.2
done
curl -fs "$BASE/healthz" >/dev/null || die "the server did not start (see $OUT_DIR/serve.log)"

# --- page weight --------------------------------------------------------------------------
bytes_of() { curl -s -o /dev/null -w '%{size_header} %{size_download}' "$1" | awk '{print $1 + $2}'; }
home=$(curl -s "$BASE/")
css=$(grep -o 'href="/assets/[^"]*\.css"' <<<"$home" | head -n 1 | cut -d'"' -f2)
js=$(grep -o 'src="/assets/[^"]*\.js"' <<<"$home" | head -n 1 | cut -d'"' -f2)
icon=$(grep -o 'rel="icon"[^>]*href="/assets/[^"]*"' <<<"$home" | grep -o '/assets/[^"]*' | head -n 1)
[[ -n "$css" && -n "$js" && -n "$icon" ]] || die "the overview links no assets"
{
  echo '| page | page bytes | + stylesheet | + script | + icon | first visit | cached visit |'
  echo '| --- | ---: | ---: | ---: | ---: | ---: | ---: |'
  css_bytes=$(bytes_of "$BASE$css")
  js_bytes=$(bytes_of "$BASE$js")
  icon_bytes=$(bytes_of "$BASE$icon")
  for path in / /incidents "/incidents/$INCIDENT_ID"; do
    page_bytes=$(bytes_of "$BASE$path")
    echo "| \`$path\` | $page_bytes | $css_bytes | $js_bytes | $icon_bytes | $((page_bytes + css_bytes + js_bytes + icon_bytes)) | $page_bytes |"
  done
} | tee "$OUT_DIR/weight.md"

# --- render time --------------------------------------------------------------------------
PAGES=("/" "/incidents" "/incidents?chain=ethereum&sort=amount" "/incidents/$INCIDENT_ID")
echo '| page | connections | req/s | p50 ms | p99 ms | max ms | non-2xx | errors | valid |' >"$OUT_DIR/render.md"
echo '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |' >>"$OUT_DIR/render.md"
for path in "${PAGES[@]}"; do
  for c in $CONNECTIONS; do
    t=$((c < THREADS ? c : THREADS))
    wrk -t"$t" -c"$c" -d"$WARMUP" "$BASE$path" >/dev/null 2>&1 || true
    out=$(wrk -t"$t" -c"$c" -d"$DURATION" --latency -s "$BENCH_DIR/report.lua" "$BASE$path")
    echo "$out" >"$OUT_DIR/wrk-$(echo "$path" | tr -c 'a-z0-9' '_')-c$c.txt"
    json=$(grep '^JSON ' <<<"$out" | cut -c6-)
    errors=$(jq '.connect_errors + .read_errors + .write_errors + .timeouts' <<<"$json")
    non2xx=$(jq '.non_2xx' <<<"$json")
    valid=yes
    [[ "$non2xx" == 0 && "$errors" == 0 ]] || valid="INVALID"
    jq -r --arg p "$path" --arg c "$c" --arg v "$valid" \
      '"| `\($p)` | \($c) | \(.rps | floor) | \(.p50_ms * 100 | round / 100) | \(.p99_ms * 100 | round / 100) | \(.max_ms * 10 | round / 10) | \(.non_2xx) | \(.connect_errors + .read_errors + .write_errors + .timeouts) | \($v) |"' \
      <<<"$json" | tee -a "$OUT_DIR/render.md"
  done
done
log "done: $OUT_DIR/weight.md and $OUT_DIR/render.md"
