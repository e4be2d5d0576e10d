#!/usr/bin/env bash
# Live updates and fan-out (docs/benchmarks.md): a release `linedesk serve` on a fresh SQLite
# data dir (or PostgreSQL with --postgres; --instances 2 runs two desks on it, the streams on
# the first, the webhooks to the second), the emulator playing LINE, an agent with an API
# token, and `linedesk bench-live`, which opens event streams, sends background webhook
# traffic and probe messages, and prints the time from each probe's 200 to its event on the
# streams, and the desk's RSS and CPU.
#
#   scripts/bench-live.sh                                   # 1 stream, at 0, 1,000, 5,000 events/s
#   STREAMS=10000 RATES=0,1000 scripts/bench-live.sh        # fan-out
#   scripts/bench-live.sh --postgres [--instances 2]
#   LINEDESK_BIN=/path/to/linedesk DURATION=10 scripts/bench-live.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${LINEDESK_BIN:-}" ]; then
  BIN=$LINEDESK_BIN
else
  cargo build --release -q -p linedesk
  BIN=target/release/linedesk
fi
STREAMS=${STREAMS:-1}
RATES=${RATES:-0,1000,5000}
DURATION=${DURATION:-10}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
INSTANCES=1
POSTGRES=
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) POSTGRES=1 ;;
    --instances) INSTANCES=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# One file descriptor per stream on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
SECRET=bench-secret
DIR=$(mktemp -d /tmp/linedesk-live.XXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DB=()
NAME=
if [ -n "$POSTGRES" ]; then
  NAME="linedesk_bench_$$"
  psql "$PG/postgres" -qc "CREATE DATABASE $NAME" >/dev/null
  DB=(--database-url "$PG/$NAME")
fi
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
  if [ -n "$NAME" ]; then psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $NAME" >/dev/null || true; fi
}
trap cleanup EXIT

EP=$(free_port)
$BIN emulator --listen 127.0.0.1:$EP --channel-secret $SECRET --channel-access-token benchtoken >/dev/null 2>&1 &
PIDS+=($!)
export LINEDESK_LINE_CHANNEL_SECRET=$SECRET LINEDESK_LINE_CHANNEL_ACCESS_TOKEN=benchtoken \
  LINEDESK_LINE_MODE=push LINEDESK_LINE_API_BASE=http://127.0.0.1:$EP \
  LINEDESK_LINE_DATA_API_BASE=http://127.0.0.1:$EP LINEDESK_SECRET_KEY=$($BIN secret-key generate)
echo bench-password | $BIN user add --login bench --name Bench --role agent --data-dir "$DIR/1" "${DB[@]}" >/dev/null
TOKEN=$($BIN token create --login bench --data-dir "$DIR/1" "${DB[@]}" | tail -n1)
PORTS=()
for i in $(seq 1 "$INSTANCES"); do
  P=$(free_port)
  RUST_LOG=warn $BIN serve --data-dir "$DIR/$i" --listen 127.0.0.1:$P "${DB[@]}" >"$DIR/serve$i.log" 2>&1 &
  PIDS+=($!)
  PORTS+=("$P")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$P/healthz" && break; sleep 0.1; done
done
DESK=${PIDS[1]}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "database: $([ -n "$NAME" ] && echo "PostgreSQL, $INSTANCES instance(s)" || echo SQLite); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "fresh desk idle: RSS $(awk '/^VmRSS/ {printf "%.1f MB", $2/1024}' /proc/$DESK/status)"
WEBHOOK_PORT=${PORTS[$((INSTANCES - 1))]}
$BIN bench-live --url "http://127.0.0.1:${PORTS[0]}" --webhook-url "http://127.0.0.1:$WEBHOOK_PORT" \
  --token "$TOKEN" --streams "$STREAMS" --rate "$RATES" --duration "$DURATION" --desk-pid "$DESK"
