#!/usr/bin/env bash
# An https upstream, measured: the same upstream reached over plain http and over https
# (nginx terminating TLS in front of it, with a certificate from a CA made here), each
# called directly and through one gateway (SQLite, demo mode) that trusts that CA with
# --upstream-ca-file. One run, one machine; every load is bounded in time. Needs nginx
# (scripts/install-tools.sh --cluster installs it) and openssl.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
SATURATION_SECS=${SATURATION_SECS:-6}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_SECS=${FIXED_SECS:-10}
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "needs nginx: scripts/install-tools.sh --cluster" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -p portcullis --quiet
bin="$root/target/release/portcullis"

UP=127.0.0.1:4200
TLS_PORT=4443
GW=127.0.0.1:4100
tmp=$(mktemp -d)
export PORTCULLIS_SECRET=bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
up() { for _ in $(seq 150); do curl -fsk "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "$1 did not start" >&2; exit 1; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }

# A test CA and a certificate for 127.0.0.1 it signs (ECDSA P-256, as a modern PKI issues).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=bench CA" \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$tmp/up.key" -out "$tmp/up.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/up.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 1 \
  -extfile "$tmp/ext" -out "$tmp/up.pem" 2>/dev/null

mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream sample { server $UP; keepalive 64; }
  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $tmp/up.pem;
    ssl_certificate_key $tmp/up.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://sample;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

"$bin" sample-upstream --addr "$UP" >"$tmp/upstream.log" 2>&1 & pids+=($!)
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" & pids+=($!)
RUST_LOG=warn "$bin" serve --demo --addr "$GW" --data-dir "$tmp/gw" --upstream-ca-file "$tmp/ca.pem" \
  --token-rate-limit 100000000 --source-refusal-limit 0 >"$tmp/gw.log" 2>&1 & pids+=($!)
up "http://$UP/sample/accounts/accounts"; up "https://127.0.0.1:$TLS_PORT/sample/accounts/accounts"; up "http://$GW/healthz"

# The demo agent's Accounts, pointed first at the upstream over http, then over https
# (the gateway applies the change at once); its limit lifted (the limiter still runs on
# every request).
client=$(awk '/demo agent/ {print $4}' "$tmp/gw.log"); profile=$(awk '/demo agent/ {print $7}' "$tmp/gw.log")
secret=$(awk '/agent secret/ {print $3}' "$tmp/gw.log")
admin=$(PORTCULLIS_DATA_DIR="$tmp/gw" "$bin" admin create-token --email admin@portcullis.local --name bench 2>/dev/null)
api() { curl -fs -H "Authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }
product=$(api "http://$GW/api/v1/products" | json "[p for p in d if p['slug'] == 'accounts'][0]['id']")
point() { api -X PUT "http://$GW/api/v1/products/$product" -d "{\"slug\":\"accounts\",\"name\":\"Accounts\",\"sandbox_url\":\"$1\",\"production_url\":\"$1\"}" >/dev/null; }
api -X PUT "http://$GW/api/v1/profiles/$profile/rate-limit" -d '{"rate_per_minute":1000000,"burst":100000}' >/dev/null
token=$(curl -fs -u "$client:$secret" -d grant_type=client_credentials "http://$GW/oauth/token" | json 'd["access_token"]')

direct_http="http://$UP/sample/accounts/accounts"
direct_https="https://127.0.0.1:$TLS_PORT/sample/accounts/accounts"
gw="http://$GW/gw/accounts/accounts"
check() { curl -fs --cacert "$tmp/ca.pem" -H "Authorization: Bearer $token" -o /dev/null -w '%{http_code}' "$1"; }
point "http://$UP/sample/accounts"
echo "checks: direct http $(check "$direct_http"), gateway → http $(check "$gw")"
point "https://127.0.0.1:$TLS_PORT/sample/accounts"
echo "checks: direct https $(check "$direct_https"), gateway → https $(check "$gw")"

run() { oha --no-tui --output-format json --insecure "$@" 2>/dev/null; }
rps='"%f %d" % (d["summary"]["requestsPerSec"] * d["statusCodeDistribution"].get("200", 0) / max(1, sum(d["statusCodeDistribution"].values())), sum(v for k, v in d["statusCodeDistribution"].items() if k != "200"))'
pct='"%.3f %.3f %d" % (d["latencyPercentiles"]["p50"]*1000, d["latencyPercentiles"]["p99"]*1000, d["statusCodeDistribution"].get("200", 0))'
auth=(-H "Authorization: Bearer $token")
echo "warming up…"
run -z 2s -c 32 "$direct_http" >/dev/null; run -z 2s -c 32 "$direct_https" >/dev/null
run -z 2s -c 32 "${auth[@]}" "$gw" >/dev/null # over https, as pointed last
fixed() { run -z "${FIXED_SECS}s" -q "$FIXED_RATE" -c 32 --latency-correction "$@" | json "$pct"; }
sleep 7 # the burst refills

read -r s_gs bad_s < <(run -z "${SATURATION_SECS}s" -c 64 "${auth[@]}" "$gw" | json "$rps")
read -r s_ds _ < <(run -z "${SATURATION_SECS}s" -c 64 "$direct_https" | json "$rps")
sleep 7
read -r gs50 gs99 _ < <(fixed "${auth[@]}" "$gw")
read -r ds50 ds99 _ < <(fixed "$direct_https")
point "http://$UP/sample/accounts"
run -z 2s -c 32 "${auth[@]}" "$gw" >/dev/null
sleep 7
read -r s_gh bad_h < <(run -z "${SATURATION_SECS}s" -c 64 "${auth[@]}" "$gw" | json "$rps")
read -r s_dh _ < <(run -z "${SATURATION_SECS}s" -c 64 "$direct_http" | json "$rps")
sleep 7
read -r gh50 gh99 _ < <(fixed "${auth[@]}" "$gw")
read -r dh50 dh99 _ < <(fixed "$direct_http")

python3 - "$s_dh" "$s_ds" "$s_gh" "$s_gs" "$dh50" "$dh99" "$ds50" "$ds99" "$gh50" "$gh99" "$gs50" "$gs99" "$FIXED_RATE" "$bad_h" "$bad_s" <<'PY'
import sys
sdh, sds, sgh, sgs = map(float, sys.argv[1:5])
dh50, dh99, ds50, ds99, gh50, gh99, gs50, gs99 = map(float, sys.argv[5:13])
rate, bad_h, bad_s = sys.argv[13], sys.argv[14], sys.argv[15]
print(f"\nmachine: {open('/proc/cpuinfo').read().count('processor')} cores (upstream, nginx, gateway and the load generator share them)")
print("| | direct, http | gateway → http | direct, https | gateway → https |")
print("|---|---:|---:|---:|---:|")
print(f"| saturation RPS | {sdh:,.0f} | {sgh:,.0f} ({sgh/sdh:.2f}×) | {sds:,.0f} | {sgs:,.0f} ({sgs/sds:.2f}×) |")
print(f"| p50 at {rate} RPS (ms) | {dh50:.3f} | {gh50:.3f} | {ds50:.3f} | {gs50:.3f} |")
print(f"| p99 at {rate} RPS (ms) | {dh99:.3f} | {gh99:.3f} | {ds99:.3f} | {gs99:.3f} |")
print(f"\nnon-200 answers in the gateway's saturation runs (not counted): http {bad_h}, https {bad_s}")
PY
