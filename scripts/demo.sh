#!/usr/bin/env bash
# Starts Portcullis in demo mode on SQLite at http://127.0.0.1:3000, installing what is
# missing first. The first start prints the admin's password once. Extra arguments go
# to `portcullis serve` (e.g. --addr 0.0.0.0:3000).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-tools.sh
export PATH="$root/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# --precompress: .br/.gz copies of the wasm, script and stylesheet at the compressors'
# best, which the server sends as they are (see server/src/portal_assets.rs).
cargo leptos build --release --precompress
exec "$root/target/release/portcullis" serve --demo --site-root "$root/target/site" "$@"
