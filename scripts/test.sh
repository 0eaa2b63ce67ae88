#!/usr/bin/env bash
# Runs every test: formatting and lints, unit and integration tests on SQLite (and on
# PostgreSQL when TEST_DATABASE_URL is set; shared rate limits when TEST_REDIS_URL names
# a Redis; three replicas behind nginx with both) — among them /mcp driven by the official MCP
# SDKs and the conformance suite — then the Playwright tests in Chromium.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-tools.sh --browser --mcp --cluster
export PATH="$root/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --all-targets -- -D warnings

step "build the portal (server + wasm)"
cargo leptos build

step "unit and integration tests on SQLite"
env -u TEST_DATABASE_URL cargo test

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  step "integration tests on PostgreSQL ($TEST_DATABASE_URL)"
  # Same package set as above, so cargo reuses the build instead of re-resolving features.
  TEST_DATABASE_URL="$TEST_DATABASE_URL" cargo test --test api
  # Each test made its own database; drop them (psql is optional on a newcomer's machine).
  if command -v psql >/dev/null; then
    psql "$TEST_DATABASE_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'portcullis_test_%'" |
      while read -r db; do psql "$TEST_DATABASE_URL" -qc "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null || true; done
  fi
fi

step "end-to-end tests in Chromium"
(cd end2end && npx playwright test)
