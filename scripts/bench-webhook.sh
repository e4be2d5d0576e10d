#!/usr/bin/env bash
# The webhook benchmark of docs/benchmarks.md: a release `linedesk serve` on a fresh SQLite
# data dir (or a fresh PostgreSQL database with --postgres), and `linedesk loadgen` on the same
# machine sending signed, unique LINE message events to /line.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p linedesk
BIN=target/release/linedesk
PORT=${PORT:-18181}
SECRET=bench-secret
DIR=$(mktemp -d /tmp/linedesk-bench.XXXX)
DB=()
if [ "${1:-}" = "--postgres" ]; then
  NAME="linedesk_bench_$$"
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "create database $NAME" >/dev/null
  DB=(--database-url "postgres://postgres@127.0.0.1:5432/$NAME")
fi
LINEDESK_LINE_CHANNEL_SECRET=$SECRET RUST_LOG=warn $BIN serve --data-dir "$DIR" --listen 127.0.0.1:$PORT "${DB[@]}" >"$DIR/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$PORT/healthz && break; sleep 0.1; done
run() { echo; echo "## loadgen $*"; $BIN loadgen --url http://127.0.0.1:$PORT/line --secret $SECRET "$@"; }
run --duration 10 --connections 64                          # as fast as it answers, 1 event per request
run --duration 10 --connections 64 --events-per-request 10  # LINE batches events
run --duration 10 --connections 32 --rate 1000              # latency at 1,000 events/s
