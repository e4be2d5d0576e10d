#!/usr/bin/env bash
# Runs every check and test of linedesk: formatting, clippy, and all tests on SQLite and
# PostgreSQL (and, for the UI, in a real Chromium). Installs what is missing through apt
# when run as root; otherwise says what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
need_root() {
  echo "missing: $1. Run this script as root (it installs it with apt-get), or install it yourself: $2" >&2
  exit 1
}
APT_UPDATED=
apt_install() {
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL on 127.0.0.1:5432 with a trusted 'postgres' user (override: LINEDESK_TEST_PG)
export LINEDESK_TEST_PG="${LINEDESK_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_ok() { command -v psql >/dev/null && psql "$LINEDESK_TEST_PG" -qtAc 'select 1' >/dev/null 2>&1; }
if ! pg_ok; then
  say "PostgreSQL is not answering at $LINEDESK_TEST_PG; starting or installing it"
  if [ "$(id -u)" -ne 0 ]; then
    need_root "PostgreSQL at $LINEDESK_TEST_PG" "apt-get install postgresql, trust auth for 127.0.0.1, then set LINEDESK_TEST_PG"
  fi
  if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql; fi
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  for _ in $(seq 1 30); do pg_ok && break; sleep 1; done
  pg_ok || { echo "PostgreSQL did not come up" >&2; exit 1; }
fi

# Databases left by earlier runs (every test makes a fresh one).
for db in $(psql "$LINEDESK_TEST_PG" -qtAc "select datname from pg_database where datname like 'linedesk\_test\_%'"); do
  psql "$LINEDESK_TEST_PG" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
done

# --- Chromium, chromedriver and a Japanese font for the browser tests
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK'; then
  say "installing chromium, chromium-driver and fonts-noto-cjk for the browser tests"
  if [ "$(id -u)" -ne 0 ]; then
    need_root "chromium, chromedriver, fonts-noto-cjk" "apt-get install chromium chromium-driver fonts-noto-cjk"
  fi
  apt_install chromium chromium-driver fonts-noto-cjk
fi

# --- Python with venv and pip, for the API contract test (schemathesis from PyPI)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  say "installing python3-venv for the API contract test"
  if [ "$(id -u)" -ne 0 ]; then
    need_root "python3 with venv and pip" "apt-get install python3 python3-venv python3-pip"
  fi
  apt_install python3 python3-venv python3-pip
fi

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The desk as shipped, without what tests switch on (desk-store's `testing` feature is enabled
# by dev-dependencies, so the line above alone would not see code that needs it).
say "cargo clippy (the binary as built for release, without test features)"
cargo clippy --workspace -- -D warnings
say "cargo test (SQLite and PostgreSQL)"
cargo test --workspace
say "API contract test (schemathesis against the real binary)"
./scripts/contract-test.sh
