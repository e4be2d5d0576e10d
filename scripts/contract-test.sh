#!/usr/bin/env bash
# The API contract test: schemathesis (PyPI) against a live desk, with the OpenAPI document
# the desk serves (generated from the handlers, crates/desk-server/src/api/doc.rs). Checks
# that no request gets a 5xx, that every status is one the document lists, and that every
# response body matches its schema.
#
# Runs the real binary (target/debug/linedesk, built first) on a temporary SQLite data
# dir with its own LINE emulator, so schemathesis' writes touch nothing else. Installs
# schemathesis into a venv under target/ the first time (python3 with venv and pip needed).
#
#   ./scripts/contract-test.sh            # ~1-2 minutes
#   MAX_EXAMPLES=200 ./scripts/contract-test.sh   # a longer search
#
# The inputs are deterministic (the same on every run), so CI does not flicker; a longer
# search with MAX_EXAMPLES tries more of them.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
TARGET="${CARGO_TARGET_DIR:-target}"
VENV="$TARGET/contract-test/venv"
BIN="$TARGET/debug/linedesk"

say() { printf '\n== %s\n' "$*"; }

installed=$("$VENV/bin/pip" show schemathesis 2>/dev/null || true)
if [ ! -x "$VENV/bin/st" ] || ! grep -qx "Version: $SCHEMATHESIS_VERSION" <<<"$installed"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
# Always through cargo (a no-op when up to date), so a changed server is what is tested. Built
# as `cargo test` builds it (the same features across the workspace), so after the test run
# nothing is compiled again.
say "building linedesk"
cargo test -q --workspace --no-run 2>/dev/null || cargo test -q --workspace --no-run

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DESK_PORT=$(free_port)
EMU_PORT=$(free_port)
DESK="http://127.0.0.1:$DESK_PORT"
EMU="http://127.0.0.1:$EMU_PORT"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export RUST_LOG=warn
SECRET=contract-secret
ACCESS_TOKEN=contract-token

say "starting a desk on $DESK (data in $WORK) and its LINE emulator on $EMU"
echo 'contract-test-password' | "$BIN" user add --data-dir "$WORK/data" --login admin --name 管理者 --role admin >/dev/null
TOKEN=$("$BIN" token create --data-dir "$WORK/data" --login admin)
"$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --webhook-url "$DESK/line" \
  --channel-secret "$SECRET" --channel-access-token "$ACCESS_TOKEN" >"$WORK/emulator.log" 2>&1 &
PIDS+=($!)
LINEDESK_LINE_CHANNEL_SECRET=$SECRET LINEDESK_LINE_CHANNEL_ACCESS_TOKEN=$ACCESS_TOKEN LINEDESK_LINE_MODE=push \
  "$BIN" serve --listen "127.0.0.1:$DESK_PORT" --data-dir "$WORK/data" \
  --line-api-base "$EMU" --line-data-api-base "$EMU" >"$WORK/desk.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -fs "$DESK/healthz" >/dev/null 2>&1 && curl -fs "$EMU/_emulator/stats" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "$DESK/healthz" >/dev/null || { cat "$WORK/desk.log" >&2; echo "the desk did not start" >&2; exit 1; }

say "seeding: LINE users writing, a customer, a linked chat, an agent's messages"
api() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
emu() { curl -sS --fail-with-body -H 'Content-Type: application/json' "$@"; }
PNG=$(python3 -c 'import base64,struct,zlib
def chunk(t,d): return struct.pack(">I",len(d))+t+d+struct.pack(">I",zlib.crc32(t+d))
raw=b"".join(b"\x00"+b"\xff\x00\x00"*4 for _ in range(4))
print(base64.b64encode(b"\x89PNG\r\n\x1a\n"+chunk(b"IHDR",struct.pack(">IIBBBBB",4,4,8,2,0,0,0))+chunk(b"IDAT",zlib.compress(raw))+chunk(b"IEND",b"")).decode())')
U1=U00000000000000000000000000000001
U2=U00000000000000000000000000000002
U3=U00000000000000000000000000000003
for u in $U1 $U2 $U3; do
  emu -X POST "$EMU/_emulator/users" -d "{\"display_name\":\"利用者 ${u: -1}\",\"user_id\":\"$u\"}" >/dev/null
done
emu -X POST "$EMU/_emulator/users/$U1/messages" -d '{"text":"こんにちは"}' >/dev/null
emu -X POST "$EMU/_emulator/users/$U1/messages" -d '{"sticker":{"package_id":"446","sticker_id":"1988"}}' >/dev/null
emu -X POST "$EMU/_emulator/users/$U2/messages" -d "{\"image_base64\":\"$PNG\"}" >/dev/null
emu -X POST "$EMU/_emulator/users/$U2/messages" -d '{"location":{"title":"本社","address":"東京都","latitude":35.68,"longitude":139.76}}' >/dev/null
emu -X POST "$EMU/_emulator/users/$U3/messages" -d '{"text":"@000-000"}' >/dev/null
# The webhook answers at once; its messages are written just after.
for _ in $(seq 1 50); do
  [ "$(api "$DESK/api/v1/conversations" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["conversations"]))')" -ge 3 ] && break
  sleep 0.1
done
CUSTOMER=$(api -X POST "$DESK/api/v1/customers" -d '{"name":"山田 花子","phone":"090-1234-5678","tags":["VIP"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X POST "$DESK/api/v1/customers/$CUSTOMER/line-passcode" -d '{}' >/dev/null
api -X PUT "$DESK/api/v1/conversations/1/customer" -d "{\"customer_id\":$CUSTOMER}" >/dev/null
api -X POST "$DESK/api/v1/conversations/1/status" -d '{"status":"in_progress"}' >/dev/null
api -X POST "$DESK/api/v1/conversations/1/messages" -d '{"text":"お問い合わせありがとうございます"}' >/dev/null
api -X POST "$DESK/api/v1/conversations/2/status" -d '{"status":"done"}' >/dev/null

say "schemathesis $SCHEMATHESIS_VERSION: at most $MAX_EXAMPLES examples per operation"
# /events is a stream that never ends: its contract is covered by the Rust tests. Run from
# under target/, where schemathesis keeps its cache (.schemathesis/), not in the repository.
OUT="$(cd "$TARGET" && pwd)/contract-test"
(cd "$OUT" && "$OUT/venv/bin/st" run "$DESK/api/v1/openapi.json" \
  --url "$DESK/api/v1" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --exclude-path /events \
  --max-examples "$MAX_EXAMPLES" \
  --generation-deterministic \
  --request-timeout 20 \
  --workers 2 \
  --no-color \
  --report junit --report-dir "$OUT/report") || {
    status=$?
    echo "--- the desk's log (warnings and errors):" >&2
    tail -n 50 "$WORK/desk.log" >&2
    exit "$status"
  }
