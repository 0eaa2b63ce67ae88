#!/usr/bin/env bash
# What a browser downloads before the portal is interactive: the size of the wasm, its
# JS glue and the stylesheet that `cargo leptos build --release` writes to the site's
# pkg dir, raw, gzip -9 and brotli at its best (-q 11), as a Markdown table to paste
# into bench/RESULTS.md. The target of issue 12 is the wasm at <= 300 KB brotli.
#
# The compressed figures are the best each format can do. What the server sends to a
# browser that takes brotli is the build's own .br beside each file (release builds
# with --precompress; listed when present); gzip is compressed on the fly at level 5.
#
#   bench/portal_weight.sh            measure target/site as it is
#   bench/portal_weight.sh --build    `cargo leptos build --release --precompress` first
#   SITE_ROOT=/some/site bench/portal_weight.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-tools.sh --bench
export PATH="$root/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

site=${SITE_ROOT:-$root/target/site}
if [ "${1:-}" = "--build" ]; then
  # Niced: the machine's cores are shared, and a size does not depend on build speed.
  nice -n 10 cargo leptos build --release --precompress >&2
fi
pkg="$site/pkg"
[ -d "$pkg" ] || { echo "no $pkg: run with --build (or cargo leptos build --release)" >&2; exit 1; }

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }
size() { stat -c %s "$1"; }

printf '%s, %s (%s), wasm-opt %s\n\n' "$(date -u +%Y-%m-%d)" "$(git rev-parse --short HEAD)" \
  "$(git diff --quiet HEAD -- . ':!bench' && echo clean || echo 'uncommitted changes')" \
  "$(wasm-opt --version 2>/dev/null | awk '{print $3}')"
printf '| file | raw | gzip -9 | brotli -q 11 | sent as br (.br copy) |\n'
printf '|---|---:|---:|---:|---:|\n'
total_br=0
# Only what the page loads: the wasm, its glue and the stylesheet (hashed or not).
for f in "$pkg"/*.wasm "$pkg"/*.js "$pkg"/*.css; do
  [ -f "$f" ] || continue
  raw=$(size "$f")
  gz=$(gzip -9 -c "$f" | wc -c)
  br=$(brotli -q 11 -c "$f" | wc -c)
  total_br=$((total_br + br))
  pre="–"
  if [ -f "$f.br" ]; then pre=$(kb "$(size "$f.br")"); fi
  printf '| %s | %s | %s | %s | %s |\n' "$(basename "$f")" "$(kb "$raw")" "$(kb "$gz")" "$(kb "$br")" "$pre"
done
printf '| **total** | | | **%s** | |\n' "$(kb "$total_br")"
