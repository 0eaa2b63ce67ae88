#!/usr/bin/env bash
# Time to interactive of the portal at 20 Mbit/s: starts the release demo on a free
# loopback port with a fresh data dir, signs up, registers a client and loads its page
# (/clients/<id>) cold RUNS times and warm WARM_RUNS times in Debian's Chromium with the
# link throttled through the DevTools protocol (bench/portal_tti.cjs). Target of issue
# 12: <= 1.5 s cold. Prints a Markdown table for bench/RESULTS.md.
#
#   bench/portal_tti.sh            measure the release build as it is
#   bench/portal_tti.sh --build    `cargo leptos build --release --precompress` first
#   RUNS=7 WARM_RUNS=3 MBIT=20 LATENCY_MS=20
#
# Loopback and two shared cores: the link is emulated, but the server, the browser and
# the wasm's compilation share the CPU with whatever else runs; run it on a quiet machine.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-tools.sh --browser
export PATH="$root/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

if [ "${1:-}" = "--build" ]; then
  nice -n 10 cargo leptos build --release --precompress >&2
fi
bin="$root/target/release/portcullis"
[ -x "$bin" ] || { echo "no $bin: run with --build" >&2; exit 1; }

data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

# Started from another directory on purpose: the server must find the site (and its
# hash file) from the path it is given, not from where it runs.
(cd "$data" && PORTCULLIS_DATA_DIR="$data" RUST_LOG=warn \
  exec "$bin" serve --demo --addr "127.0.0.1:$port" --site-root "$root/target/site" >"$data/server.log" 2>&1) &
server=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$data/server.log" >&2; exit 1; }
  sleep 0.2
done

date -u +%Y-%m-%d
BASE_URL="http://127.0.0.1:$port" node "$root/bench/portal_tti.cjs"
