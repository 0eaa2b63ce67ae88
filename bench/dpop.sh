#!/usr/bin/env bash
# DPoP beside bearer, in one run on this machine: the same upstream called directly,
# through the gateway with a bearer token, and with DPoP-bound tokens (a fresh proof per
# request, ES256 and EdDSA), plus the token endpoint issuing bearer and bound tokens, and
# tokens for clients that authenticate with a signed assertion (private_key_jwt), and
# tokens of a trusted identity provider (federation: one reused, or a new one each call).
# Stock load generators cannot make a proof per request, so every case is loaded by the
# same generator (server/examples/dpop_load.rs). Besides throughput and latency it
# reports the gateway's CPU time per request from /proc: what verifying proofs costs the
# server, apart from what signing them costs the client on the same two cores.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p portcullis --quiet --bin portcullis --example dpop_load
bin="$root/target/release/portcullis"
load="$root/target/release/examples/dpop_load"

SATURATION_SECS=${SATURATION_SECS:-10}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_SECS=${FIXED_SECS:-10}
GW=127.0.0.1:4300
UP=127.0.0.1:4400
# shellcheck source=bench/demo.sh
. "$root/bench/demo.sh"
demo_start "$bin" "$GW" "$UP"

# The gateway's CPU seconds so far (user + system), from /proc.
gw_cpu() { python3 -c "f=open('/proc/$gw_pid/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/100)"; }
# run <mode> <path> <secs> <concurrency> <rate>: the generator's JSON plus the gateway's CPU.
run() {
  local before after
  before=$(gw_cpu)
  out=$("$load" "$1" "http://$GW" "$client" "$secret" "$2" "$3" "$4" "$5")
  after=$(gw_cpu)
  python3 -c "import json,sys; d=json.loads(sys.argv[1]); d['gw_cpu_s']=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps(d))" "$out" "$before" "$after"
}
direct="http://$UP/sample/accounts/accounts"
echo "warming up…" >&2
run bearer /gw/accounts/accounts 3 32 0 >/dev/null
run dpop-es256 /gw/accounts/accounts 3 32 0 >/dev/null

results="$tmp/results.jsonl"
export BENCH_PROFILE="$profile" BENCH_ADMIN_TOKEN="$admin"
for mode in bearer dpop-eddsa dpop-es256 federated-es256 federated-es256-each; do
  run "$mode" /gw/accounts/accounts "$SATURATION_SECS" 64 0 | sed "s/^{/{\"kind\":\"saturation\",/" >>"$results"
  run "$mode" /gw/accounts/accounts "$FIXED_SECS" 32 "$FIXED_RATE" | sed "s/^{/{\"kind\":\"fixed\",/" >>"$results"
done
# A per-task token is good for 10,000 calls: loaded at the fixed rate only, for at most
# that many calls, beside the bearer token's row at the same rate.
task_secs=$(( FIXED_SECS * FIXED_RATE > 10000 ? 10000 / FIXED_RATE : FIXED_SECS ))
run bearer-task /gw/accounts/accounts "$task_secs" 32 "$FIXED_RATE" | sed "s/^{/{\"kind\":\"fixed\",/" >>"$results"
"$load" direct "" "" "" "$direct" "$SATURATION_SECS" 64 0 | sed "s/^{/{\"kind\":\"saturation\",\"gw_cpu_s\":0,/" >>"$results"
"$load" direct "" "" "" "$direct" "$FIXED_SECS" 32 "$FIXED_RATE" | sed "s/^{/{\"kind\":\"fixed\",\"gw_cpu_s\":0,/" >>"$results"
for mode in token-bearer token-dpop-es256 token-assertion-eddsa token-assertion-es256; do
  run "$mode" /oauth/token "$SATURATION_SECS" 32 0 | sed "s/^{/{\"kind\":\"saturation\",/" >>"$results"
done

python3 - "$results" "$FIXED_RATE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = sys.argv[2]
sat = {r["mode"]: r for r in rows if r["kind"] == "saturation"}
fixed = {r["mode"]: r for r in rows if r["kind"] == "fixed"}
print(f"\nmachine: {open('/proc/cpuinfo').read().count('processor')} cores; one load generator for every case")
print("| | saturation RPS | vs bearer | gateway CPU µs/request | p50 at %s RPS (ms) | p99 (ms) | p99.9 (ms) | 2xx at fixed rate |" % rate)
print("|---|---:|---:|---:|---:|---:|---:|---:|")
b = sat["bearer"]["rps"]
for mode, name in [("direct", "direct upstream"), ("bearer", "gateway, bearer token"), ("dpop-eddsa", "gateway, DPoP EdDSA"), ("dpop-es256", "gateway, DPoP ES256"),
                   ("federated-es256", "gateway, identity provider's token (ES256), reused"), ("federated-es256-each", "gateway, identity provider's token (ES256), new each call")]:
    s, f = sat[mode], fixed[mode]
    cpu = s["gw_cpu_s"] / s["requests"] * 1e6 if s["gw_cpu_s"] else 0
    print(f"| {name} | {s['rps']:,.0f} | {s['rps']/b:.2f} | {cpu:.0f} | {f['p50']:.3f} | {f['p99']:.3f} | {f['p999']:.3f} | {f['ok']}/{f['requests']} |")
t, bf = fixed["bearer-task"], fixed["bearer"]
print(f"\nper-task token (RFC 9396, every call checked against its endpoints and counted), at {rate} RPS:")
print("| | gateway CPU µs/request | p50 (ms) | p99 (ms) | p99.9 (ms) | 2xx |")
print("|---|---:|---:|---:|---:|---:|")
for r, name in [(bf, "bearer token"), (t, "per-task token, max_uses counted")]:
    print(f"| {name} | {r['gw_cpu_s']/r['requests']*1e6:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['p999']:.3f} | {r['ok']}/{r['requests']} |")
print("\n| token endpoint | tokens/s (32 connections) | gateway CPU µs/token | 2xx |")
print("|---|---:|---:|---:|")
for mode, name in [("token-bearer", "bearer token (client secret)"), ("token-dpop-es256", "DPoP-bound token (ES256 proof, nonce)"),
                   ("token-assertion-eddsa", "private_key_jwt, EdDSA assertion"), ("token-assertion-es256", "private_key_jwt, ES256 assertion")]:
    s = sat[mode]
    print(f"| {name} | {s['rps']:,.0f} | {s['gw_cpu_s']/s['requests']*1e6:.0f} | {s['ok']}/{s['requests']} |")
PY
