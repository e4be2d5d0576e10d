#!/usr/bin/env bash
# The webhook benchmark of docs/benchmarks.md: a release `linedesk serve` on a fresh SQLite
# data dir (or a fresh PostgreSQL database with --postgres), and `linedesk loadgen` on the same
# machine sending signed, unique LINE message events to /line; every event is durable before
# its 200. Three cases: as fast as the desk answers with 1 event per request, the same with 10
# (LINE batches events), and the latency at a steady 1,000 events/s.
#
#   scripts/bench-webhook.sh [--postgres]
#   LINEDESK_BIN=/path/to/linedesk scripts/bench-webhook.sh   # an existing build, no cargo
#   DURATION=30 PORT=18181 PG=postgres://postgres@127.0.0.1:5432 scripts/bench-webhook.sh
#
# Other work on the machine (builds, tests) takes CPU from both sides and lowers the figures:
# how idle the CPUs were in the second before each case is printed with it.
#
# Then, on SQLite and when wrk is installed (apt-get install wrk), the side-by-side run of
# ../shared/bench/compare.sh (COMPARE=path to use another copy; COMPARE_RUNS=n runs, default 3,
# since one run on a busy machine says little): wrk with 2 threads and 32 connections replays
# the same pre-signed corpus to this desk and to the LINE Python SDK peer (Flask + gunicorn -w 4
# + SQLite), one after the other, and prints both RESULT lines and the ratio. Those are the
# figures to compare with the peer; loadgen's above are the desk's own (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${LINEDESK_BIN:-}" ]; then
  BIN=$LINEDESK_BIN
else
  cargo build --release -q -p linedesk
  BIN=target/release/linedesk
fi
PORT=${PORT:-18181}
DURATION=${DURATION:-10}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SECRET=bench-secret
DIR=$(mktemp -d /tmp/linedesk-bench.XXXX)
DB=()
NAME=
if [ "${1:-}" = "--postgres" ]; then
  NAME="linedesk_bench_$$"
  psql "$PG/postgres" -qc "CREATE DATABASE $NAME" >/dev/null
  DB=(--database-url "$PG/$NAME")
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "$(free -g | awk '/^Mem:/ {print $2}') GB RAM; database: ${NAME:+PostgreSQL $NAME}${NAME:-SQLite in $DIR}"

LINEDESK_LINE_CHANNEL_SECRET=$SECRET RUST_LOG=warn $BIN serve --data-dir "$DIR" \
  --listen 127.0.0.1:$PORT "${DB[@]}" >"$DIR/serve.log" 2>&1 &
PID=$!
cleanup() {
  kill $PID 2>/dev/null || true
  wait $PID 2>/dev/null || true
  rm -rf "$DIR"
  if [ -n "$NAME" ]; then psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $NAME" >/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done

idle() {
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 1
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $((100 * (b[4] + b[5] - a[4] - a[5]) / (total > 0 ? total : 1)))
}
run() {
  echo
  echo "## loadgen $*   (CPUs $(idle)% idle just before)"
  $BIN loadgen --url http://127.0.0.1:$PORT/line --secret $SECRET --duration "$DURATION" "$@"
}
run --connections 64                          # as fast as it answers, 1 event per request
run --connections 64 --events-per-request 10  # LINE batches events
run --connections 32 --rate 1000              # latency at 1,000 events/s

COMPARE=${COMPARE:-../shared/bench/compare.sh}
if [ -z "$NAME" ] && command -v wrk >/dev/null && [ -x "$COMPARE" ]; then
  # compare.sh starts a desk of its own; this one would only take memory meanwhile.
  kill $PID 2>/dev/null || true
  wait $PID 2>/dev/null || true
  for i in $(seq 1 "${COMPARE_RUNS:-3}"); do
    echo
    echo "## compare.sh run $i: wrk -t2 -c32, pre-signed corpus, linedesk vs the LINE Python SDK peer   (CPUs $(idle)% idle just before)"
    "$COMPARE" "$BIN" | tail -n 3
  done
elif [ -z "$NAME" ]; then
  echo
  echo "(compare.sh skipped: needs wrk — apt-get install wrk — and $COMPARE)"
fi
