#!/usr/bin/env bash
# Gateway overhead benchmark: the same upstream called directly and through the
# gateway (token auth + grant check + rate limit + audit), in one run, on this machine.
# Reports saturation throughput and latency percentiles at a fixed open-loop rate,
# and the gateway/direct ratios. Loopback only; every load is bounded in time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -p portcullis --quiet
bin="$root/target/release/portcullis"

SATURATION_SECS=${SATURATION_SECS:-10}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_SECS=${FIXED_SECS:-15}
GW=127.0.0.1:4100
UP=127.0.0.1:4200
# shellcheck source=bench/demo.sh
. "$root/bench/demo.sh"
demo_start "$bin" "$GW" "$UP"
token=$(curl -fs -u "$client:$secret" -d grant_type=client_credentials "http://$GW/oauth/token" | json 'd["access_token"]')

direct="http://$UP/sample/accounts/accounts"
gateway="http://$GW/gw/accounts/accounts"
auth="Authorization: Bearer $token"
test "$(curl -fs -H "$auth" "$gateway" | json 'd["data"][0]["id"]')" = acc-1001

run() { oha --no-tui --output-format json "$@" 2>/dev/null; }
echo "warming up…"
run -z 3s -c 32 "$direct" >/dev/null
run -z 3s -c 32 -H "$auth" "$gateway" >/dev/null

sat_direct=$(run -z "${SATURATION_SECS}s" -c 64 "$direct" | json 'd["summary"]["requestsPerSec"]')
sat_gateway=$(run -z "${SATURATION_SECS}s" -c 64 -H "$auth" "$gateway" | json 'd["summary"]["requestsPerSec"]')
# The token endpoint: client authentication, an Ed25519 signature and an audit row each.
read -r tokens_per_sec tokens_ok < <(run -z "${SATURATION_SECS}s" -c 32 -m POST -a "$client:$secret" \
  -T application/x-www-form-urlencoded -d grant_type=client_credentials "http://$GW/oauth/token" |
  json '"%d %d" % (d["summary"]["requestsPerSec"], d["statusCodeDistribution"].get("200", 0))')
pct='"%.3f %.3f %.3f %d" % (d["latencyPercentiles"]["p50"]*1000, d["latencyPercentiles"]["p99"]*1000, d["latencyPercentiles"]["p99.9"]*1000, d["statusCodeDistribution"].get("200", 0))'
read -r d50 d99 d999 dok < <(run -z "${FIXED_SECS}s" -q "$FIXED_RATE" -c 32 --latency-correction "$direct" | json "$pct")
read -r g50 g99 g999 gok < <(run -z "${FIXED_SECS}s" -q "$FIXED_RATE" -c 32 --latency-correction -H "$auth" "$gateway" | json "$pct")

sleep 1 # let the audit writer drain its queue
audited=$(python3 - "$tmp/portcullis.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM audit_events WHERE action = 'request' AND channel = 'rest'").fetchone()[0])
PY
)

# The same gateway with --audit-durability committed: each answer waits for its row's
# batch to commit (group commit), so a crash loses no answered request's row.
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
RUST_LOG=warn "$bin" serve --demo --addr "$GW" --token-rate-limit 100000000 --source-refusal-limit 0 \
  --audit-durability committed >"$tmp/gateway-committed.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs "http://$GW/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
run -z 3s -c 32 -H "$auth" "$gateway" >/dev/null
sat_committed=$(run -z "${SATURATION_SECS}s" -c 64 -H "$auth" "$gateway" | json 'd["summary"]["requestsPerSec"]')
read -r c50 c99 c999 cok < <(run -z "${FIXED_SECS}s" -q "$FIXED_RATE" -c 32 --latency-correction -H "$auth" "$gateway" | json "$pct")

python3 - "$sat_direct" "$sat_gateway" "$d50" "$d99" "$d999" "$g50" "$g99" "$g999" "$dok" "$gok" "$audited" "$FIXED_RATE" "$tokens_per_sec" "$tokens_ok" "$sat_committed" "$c50" "$c99" "$c999" "$cok" <<'PY'
import sys
sd, sg, d50, d99, d999, g50, g99, g999 = map(float, sys.argv[1:9])
dok, gok, audited, rate, tps, tok = map(int, sys.argv[9:15])
print(f"\nmachine: {open('/proc/cpuinfo').read().count('processor')} cores")
print("| | direct | gateway | gateway/direct |")
print("|---|---:|---:|---:|")
print(f"| saturation RPS | {sd:,.0f} | {sg:,.0f} | {sg/sd:.2f} |")
print(f"| p50 at {rate} RPS (ms) | {d50:.3f} | {g50:.3f} | +{(g50-d50)*1000:.0f} µs |")
print(f"| p99 at {rate} RPS (ms) | {d99:.3f} | {g99:.3f} | +{(g99-d99)*1000:.0f} µs |")
print(f"| p99.9 at {rate} RPS (ms) | {d999:.3f} | {g999:.3f} | +{(g999-d999)*1000:.0f} µs |")
print(f"| token endpoint, tokens/s (32 connections) | | {tps:,} | |")
print(f"\n200s at the fixed rate: direct {dok}, gateway {gok}; audit rows written for gateway calls: {audited}; tokens issued (200) in the token run: {tok}")
sc, c50, c99, c999 = map(float, sys.argv[15:19])
cok = int(sys.argv[19])
print("\n--audit-durability committed (answers wait for their row's commit) against the default, queued:")
print("| | queued | committed | committed/queued |")
print("|---|---:|---:|---:|")
print(f"| saturation RPS | {sg:,.0f} | {sc:,.0f} | {sc/sg:.2f} |")
print(f"| p50 at {rate} RPS (ms) | {g50:.3f} | {c50:.3f} | +{(c50-g50)*1000:.0f} µs |")
print(f"| p99 at {rate} RPS (ms) | {g99:.3f} | {c99:.3f} | +{(c99-g99)*1000:.0f} µs |")
print(f"| p99.9 at {rate} RPS (ms) | {g999:.3f} | {c999:.3f} | +{(c999-g999)*1000:.0f} µs |")
print(f"200s at the fixed rate, committed: {cok}")
PY
