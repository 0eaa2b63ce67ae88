#!/usr/bin/env bash
# Several replicas, measured: the same upstream called directly, through one gateway on
# SQLite (per-process limits, today's single node), through one on PostgreSQL with its
# limits in Redis, and through two such replicas at once (each loaded by its own client,
# as a round-robin balancer would split the load). One run, one machine; every load is
# bounded in time. Needs PostgreSQL (PG_URL) and Redis (REDIS_URL).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
# Five seconds: a profile's limit is at most 1,000,000 a minute with a burst of
# 100,000, which two replicas at saturation would otherwise exhaust (the limiter is
# measured, not bypassed); each saturation run starts with a refilled bucket.
SATURATION_SECS=${SATURATION_SECS:-5}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_SECS=${FIXED_SECS:-15}
command -v psql >/dev/null || { echo "needs psql and PostgreSQL at $PG_URL" >&2; exit 1; }
command -v redis-cli >/dev/null && ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && { echo "Redis at $REDIS_URL does not answer" >&2; exit 1; }
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -p portcullis --quiet
bin="$root/target/release/portcullis"

db=portcullis_bench_replicas
psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db" >/dev/null
pg="${PG_URL%/*}/$db"
UP=127.0.0.1:4200
LITE=127.0.0.1:4100
A=127.0.0.1:4101
B=127.0.0.1:4102
tmp=$(mktemp -d)
export PORTCULLIS_SECRET=bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
up() { for _ in $(seq 150); do curl -fs "http://$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "$1 did not start" >&2; exit 1; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }
common=(--token-rate-limit 100000000 --source-refusal-limit 0 --public-url http://bench.test)

"$bin" sample-upstream --addr "$UP" >"$tmp/upstream.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$bin" serve --demo --addr "$LITE" --data-dir "$tmp/lite" "${common[@]}" >"$tmp/lite.log" 2>&1 & pids+=($!)
RUST_LOG=warn "$bin" serve --demo --addr "$A" --data-dir "$tmp/a" --database-url "$pg" --redis-url "$REDIS_URL" "${common[@]}" >"$tmp/a.log" 2>&1 & pids+=($!)
up "$LITE"; up "$A"
# The second replica once the first has made the schema and seeded the demo.
RUST_LOG=warn "$bin" serve --addr "$B" --data-dir "$tmp/b" --database-url "$pg" --redis-url "$REDIS_URL" "${common[@]}" >"$tmp/b.log" 2>&1 & pids+=($!)
up "$B"

# Each store: Accounts points at the separate upstream, the demo agent's limit is lifted
# out of the way (the limiter, local or in Redis, still runs on every request), a token.
setup() { # base data-dir db-url log -> prints a token
  local base=$1 dir=$2 url=$3 log=$4
  local client profile secret admin pid
  client=$(awk '/demo agent/ {print $4}' "$log"); profile=$(awk '/demo agent/ {print $7}' "$log"); secret=$(awk '/agent secret/ {print $3}' "$log")
  admin=$(PORTCULLIS_DATA_DIR="$dir" "$bin" admin create-token --email admin@portcullis.local --name bench ${url:+--database-url "$url"} 2>/dev/null)
  api() { curl -fs -H "Authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }
  pid=$(api "http://$base/api/v1/products" | json '[p for p in d if p["slug"] == "accounts"][0]["id"]')
  api -X PUT "http://$base/api/v1/products/$pid" -d "{\"slug\":\"accounts\",\"name\":\"Accounts\",\"sandbox_url\":\"http://$UP/sample/accounts\",\"production_url\":\"http://$UP/sample/accounts\"}" >/dev/null
  api -X PUT "http://$base/api/v1/profiles/$profile/rate-limit" -d '{"rate_per_minute":1000000,"burst":100000}' >/dev/null || { echo "rate limit not lifted" >&2; exit 1; }
  curl -fs -u "$client:$secret" -d grant_type=client_credentials "http://$base/oauth/token" | json 'd["access_token"]'
}
lite_token=$(setup "$LITE" "$tmp/lite" "" "$tmp/lite.log")
pg_token=$(setup "$A" "$tmp/a" "$pg" "$tmp/a.log")
sleep 1.5 # the second replica hears of the limit change (it would within a second)
for base in "$LITE" "$A" "$B"; do
  t=$lite_token; [ "$base" != "$LITE" ] && t=$pg_token
  test "$(curl -fs -H "Authorization: Bearer $t" "http://$base/gw/accounts/accounts" | json 'd["data"][0]["id"]')" = acc-1001
done

evals() { redis-cli -u "$REDIS_URL" info commandstats | awk -F'[=,:]' '/^cmdstat_eval(sha)?:/ {n += $3} END {print n + 0}'; }
evals_before=$(evals)
run() { oha --no-tui --output-format json "$@" 2>/dev/null; }
# Requests per second that were answered 200; anything else (a 429 from the limit, say)
# is reported, not counted.
rps='"%f %d" % (d["summary"]["requestsPerSec"] * d["statusCodeDistribution"].get("200", 0) / max(1, sum(d["statusCodeDistribution"].values())), sum(v for k, v in d["statusCodeDistribution"].items() if k != "200"))'
pct='"%.3f %.3f %d" % (d["latencyPercentiles"]["p50"]*1000, d["latencyPercentiles"]["p99"]*1000, d["statusCodeDistribution"].get("200", 0))'
direct="http://$UP/sample/accounts/accounts"
gw() { echo "http://$1/gw/accounts/accounts"; }
echo "warming up…"
run -z 3s -c 32 "$direct" >/dev/null
run -z 3s -c 32 -H "Authorization: Bearer $lite_token" "$(gw "$LITE")" >/dev/null
run -z 3s -c 32 -H "Authorization: Bearer $pg_token" "$(gw "$A")" >/dev/null
run -z 3s -c 32 -H "Authorization: Bearer $pg_token" "$(gw "$B")" >/dev/null

refill() { sleep 7; } # a drained burst of 100,000 refills at 16,667 a second
read -r sat_direct _ < <(run -z "${SATURATION_SECS}s" -c 64 "$direct" | json "$rps")
refill
read -r sat_lite bad_lite < <(run -z "${SATURATION_SECS}s" -c 64 -H "Authorization: Bearer $lite_token" "$(gw "$LITE")" | json "$rps")
read -r sat_one bad_one < <(run -z "${SATURATION_SECS}s" -c 64 -H "Authorization: Bearer $pg_token" "$(gw "$A")" | json "$rps")
refill
run -z "${SATURATION_SECS}s" -c 32 -H "Authorization: Bearer $pg_token" "$(gw "$A")" >"$tmp/sat-a.json" & load=$!
run -z "${SATURATION_SECS}s" -c 32 -H "Authorization: Bearer $pg_token" "$(gw "$B")" >"$tmp/sat-b.json"
wait "$load"
read -r sat_a bad_a < <(json "$rps" <"$tmp/sat-a.json")
read -r sat_b bad_b < <(json "$rps" <"$tmp/sat-b.json")
sat_two=$(python3 -c "print($sat_a + $sat_b)")
refill

fixed() { run -z "${FIXED_SECS}s" -q "$1" -c 32 --latency-correction "${@:2}" | json "$pct"; }
read -r d50 d99 dok < <(fixed "$FIXED_RATE" "$direct")
read -r l50 l99 lok < <(fixed "$FIXED_RATE" -H "Authorization: Bearer $lite_token" "$(gw "$LITE")")
read -r o50 o99 ook < <(fixed "$FIXED_RATE" -H "Authorization: Bearer $pg_token" "$(gw "$A")")
half=$((FIXED_RATE / 2))
fixed "$half" -H "Authorization: Bearer $pg_token" "$(gw "$A")" >"$tmp/fixed-a.txt" & load=$!
fixed "$half" -H "Authorization: Bearer $pg_token" "$(gw "$B")" >"$tmp/fixed-b.txt"
wait "$load"
read -r a50 a99 aok <"$tmp/fixed-a.txt"
read -r b50 b99 bok <"$tmp/fixed-b.txt"
sleep 2 # the audit writers drain
rows=$(psql "$pg" -Atc "SELECT COUNT(*) FROM audit_events WHERE action = 'request' AND channel = 'rest'")
keys=$(( $(evals) - evals_before ))

python3 - "$sat_direct" "$sat_lite" "$sat_one" "$sat_two" "$d50" "$d99" "$l50" "$l99" "$o50" "$o99" "$a50" "$a99" "$b50" "$b99" \
  "$dok" "$lok" "$ook" "$aok" "$bok" "$rows" "$keys" "$FIXED_RATE" "$bad_lite" "$bad_one" "$((bad_a + bad_b))" <<'PY'
import sys
sd, sl, s1, s2 = map(float, sys.argv[1:5])
d50, d99, l50, l99, o50, o99, a50, a99, b50, b99 = map(float, sys.argv[5:15])
dok, lok, ook, aok, bok = map(int, sys.argv[15:20])
rows, keys, rate = sys.argv[20], sys.argv[21], int(sys.argv[22])
bad = sys.argv[23:26]
print(f"\nmachine: {open('/proc/cpuinfo').read().count('processor')} cores (upstream, gateways, PostgreSQL, Redis and the load generator share them)")
print("| | direct | 1 gateway, SQLite | 1 replica, PostgreSQL + Redis | 2 replicas, PostgreSQL + Redis |")
print("|---|---:|---:|---:|---:|")
print(f"| saturation RPS | {sd:,.0f} | {sl:,.0f} ({sl/sd:.2f}×) | {s1:,.0f} ({s1/sd:.2f}×) | {s2:,.0f} ({s2/sd:.2f}×) |")
print(f"| p50 at {rate} RPS (ms) | {d50:.3f} | {l50:.3f} | {o50:.3f} | {a50:.3f} / {b50:.3f} |")
print(f"| p99 at {rate} RPS (ms) | {d99:.3f} | {l99:.3f} | {o99:.3f} | {a99:.3f} / {b99:.3f} |")
print(f"\n200s at the fixed rate: direct {dok}, SQLite {lok}, one replica {ook}, two replicas {aok} + {bok} (half the rate each)")
print(f"audit rows on PostgreSQL for gateway calls: {rows}; limit scripts Redis ran meanwhile: {keys}")
print(f"non-200 answers in the saturation runs (not counted above): SQLite {bad[0]}, one replica {bad[1]}, two replicas {bad[2]}")
PY
