#!/usr/bin/env bash
# Did a change make the gateway slower? Builds an earlier revision (default: the
# previous commit) beside the working tree, runs both gateways against one upstream
# process, and alternates their load runs so that the machine's drift hits both alike.
#
#   ./bench/compare.sh <base-rev>        e.g. ./bench/compare.sh 97bb53c
#
# Reports, for base and head: saturation RPS (median of ROUNDS alternated runs) and, at
# a fixed rate, p50/p99 and the gateway's CPU time per request (from /proc, so the
# load generator's and upstream's share does not blur it). Loopback only.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
base_rev=${1:-HEAD~1}
ROUNDS=${ROUNDS:-3}
SATURATION_SECS=${SATURATION_SECS:-8}
FIXED_RATE=${FIXED_RATE:-3000}
FIXED_SECS=${FIXED_SECS:-10}
command -v oha >/dev/null || cargo install oha --locked

# Both builds are release builds of the same workspace; the base one lives in a worktree
# and a target directory of its own so that it never disturbs the working tree's.
base_dir="$root/target/bench-base"
git worktree prune
if [ "$(git -C "$base_dir/src" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$base_rev")" ]; then
  rm -rf "$base_dir/src"
  git worktree add --detach --force "$base_dir/src" "$base_rev" >/dev/null
fi
CARGO_TARGET_DIR="$base_dir/target" cargo build --release -p portcullis --quiet --manifest-path "$base_dir/src/Cargo.toml"
cargo build --release -p portcullis --quiet
bins=("$base_dir/target/release/portcullis" "$root/target/release/portcullis")
names=("base $(git rev-parse --short "$base_rev")" "head $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +)")

tmp=$(mktemp -d)
export PORTCULLIS_SECRET=bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }
run() { oha --no-tui --output-format json "$@" 2>/dev/null; }

UP=127.0.0.1:4200
"${bins[1]}" sample-upstream --addr "$UP" >"$tmp/upstream.log" 2>&1 & pids+=($!)

# Starts gateway $1 on port $2 in demo mode, points Accounts at the shared upstream,
# lifts the demo agent's limits, and writes "<pid> <url> <token>" to $tmp/gw$2/info.
start() {
  local bin=$1 port=$2 dir="$tmp/gw$2" extra=()
  mkdir -p "$dir"
  "$bin" serve --help | grep -q -- --source-refusal-limit && extra+=(--source-refusal-limit 0)
  PORTCULLIS_DATA_DIR="$dir" RUST_LOG=warn "$bin" serve --demo --addr "127.0.0.1:$port" \
    --token-rate-limit 100000000 "${extra[@]}" >"$dir/log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 150); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  local client profile secret admin product token
  client=$(awk '/demo agent/ {print $4}' "$dir/log")
  profile=$(awk '/demo agent/ {print $7}' "$dir/log")
  secret=$(awk '/agent secret/ {print $3}' "$dir/log")
  admin=$(PORTCULLIS_DATA_DIR="$dir" "$bin" admin create-token --email admin@portcullis.local --name bench 2>/dev/null)
  api() { curl -fsS -H "Authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }
  product=$(api "http://127.0.0.1:$port/api/v1/products" | json '[p for p in d if p["slug"] == "accounts"][0]["id"]')
  api -X PUT "http://127.0.0.1:$port/api/v1/products/$product" -d "{\"slug\":\"accounts\",\"name\":\"Accounts\",\"sandbox_url\":\"http://$UP/sample/accounts\",\"production_url\":\"http://$UP/sample/accounts\"}" >/dev/null
  api -X PUT "http://127.0.0.1:$port/api/v1/profiles/$profile/rate-limit" -d '{"rate_per_minute":1000000,"burst":100000}' >/dev/null
  token=$(curl -fs -u "$client:$secret" -d grant_type=client_credentials "http://127.0.0.1:$port/oauth/token" | json 'd["access_token"]')
  test "$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/gw/accounts/accounts" | json 'd["data"][0]["id"]')" = acc-1001
  echo "$pid http://127.0.0.1:$port/gw/accounts/accounts $token" >"$dir/info"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start "${bins[0]}" 4101
start "${bins[1]}" 4102
read -r pid0 url0 tok0 <"$tmp/gw4101/info"
read -r pid1 url1 tok1 <"$tmp/gw4102/info"
gw_pid=("$pid0" "$pid1"); gw_url=("$url0" "$url1"); gw_tok=("$tok0" "$tok1")

echo "warming up…"
for i in 0 1; do run -z 3s -c 32 -H "Authorization: Bearer ${gw_tok[$i]}" "${gw_url[$i]}" >/dev/null; done

sat=("" "")
for _ in $(seq "$ROUNDS"); do
  for i in 0 1; do
    sat[i]+="$(run -z "${SATURATION_SECS}s" -c 64 -H "Authorization: Bearer ${gw_tok[$i]}" "${gw_url[$i]}" | json 'd["summary"]["requestsPerSec"]') "
  done
done
# Fixed-rate runs in the order base, head, head, base: whichever ran second looked a few
# per cent worse in CPU and latency (measured both ways, 2026-12-05), so each side gets
# one run in each position and reports the mean of its two.
fixed=("" "")
for i in 0 1 1 0; do
  before=$(cpu_ticks "${gw_pid[$i]}")
  fixed[i]+=$(run -z "${FIXED_SECS}s" -q "$FIXED_RATE" -c 32 --latency-correction -H "Authorization: Bearer ${gw_tok[$i]}" "${gw_url[$i]}" |
    json '"%.3f %.3f %d" % (d["latencyPercentiles"]["p50"]*1000, d["latencyPercentiles"]["p99"]*1000, d["statusCodeDistribution"].get("200", 0))')
  fixed[i]+=" $(($(cpu_ticks "${gw_pid[$i]}") - before));"
done

python3 - "$(getconf CLK_TCK)" "${names[0]}" "${names[1]}" "${sat[0]}" "${sat[1]}" "${fixed[0]}" "${fixed[1]}" "$FIXED_RATE" <<'PY'
import statistics, sys
tck, n0, n1, s0, s1, f0, f1, rate = sys.argv[1:]
tck = int(tck)
def sat(s): return [float(x) for x in s.split()]
def fixed(f):
    runs = [r.split() for r in f.split(";") if r.strip()]
    p50 = statistics.mean(float(r[0]) for r in runs)
    p99 = statistics.mean(float(r[1]) for r in runs)
    ok, ticks = sum(int(r[2]) for r in runs), sum(int(r[3]) for r in runs)
    return p50, p99, ok, ticks / tck * 1e6 / max(ok, 1)
(s0, s1), (f0, f1) = (sat(s0), sat(s1)), (fixed(f0), fixed(f1))
m0, m1 = statistics.median(s0), statistics.median(s1)
print(f"\n| | {n0} | {n1} | head/base |")
print("|---|---:|---:|---:|")
print(f"| saturation RPS, median of {len(s0)} alternated runs | {m0:,.0f} | {m1:,.0f} | {m1/m0:.2f} |")
print(f"| (each run) | {', '.join(f'{x:,.0f}' for x in s0)} | {', '.join(f'{x:,.0f}' for x in s1)} | |")
print(f"| p50 at {rate} RPS (ms), mean of 2 runs (ABBA) | {f0[0]:.3f} | {f1[0]:.3f} | {f1[0]-f0[0]:+.3f} ms |")
print(f"| p99 at {rate} RPS (ms), mean of 2 runs (ABBA) | {f0[1]:.3f} | {f1[1]:.3f} | {f1[1]-f0[1]:+.3f} ms |")
print(f"| gateway CPU per request at {rate} RPS (µs) | {f0[3]:.0f} | {f1[3]:.0f} | {f1[3]/f0[3]:.2f} |")
print(f"\n200s at the fixed rate (two runs each): base {f0[2]}, head {f1[2]}")
PY
