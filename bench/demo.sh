# Sourced by bench/run.sh and bench/dpop.sh. `demo_start` starts the sample upstream as
# its own process and Portcullis in demo mode on a fresh data dir (`$tmp`, removed at
# exit with every process started), waits for both, then `demo_prepare`s the demo
# agent. It sets `tmp`, `pids`, `gw_pid`, `client`, `profile`, `secret` and `admin`.

json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }
api() { curl -fs -H "Authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }

# demo_prepare <portcullis binary> <gateway log> <gateway host:port> <upstream host:port>
demo_prepare() {
  local bin=$1 log=$2 gw=$3 up=$4 product
  client=$(awk '/demo agent/ {print $4}' "$log")
  profile=$(awk '/demo agent/ {print $7}' "$log")
  secret=$(awk '/agent secret/ {print $3}' "$log")
  admin=$("$bin" admin create-token --email admin@portcullis.local --name bench 2>/dev/null)
  product=$(api "http://$gw/api/v1/products" | json '[p for p in d if p["slug"] == "accounts"][0]["id"]')
  api -X PUT "http://$gw/api/v1/products/$product" -d "{\"slug\":\"accounts\",\"name\":\"Accounts\",\"sandbox_url\":\"http://$up/sample/accounts\",\"production_url\":\"http://$up/sample/accounts\"}" >/dev/null
  api -X PUT "http://$gw/api/v1/profiles/$profile/rate-limit" -d '{"rate_per_minute":1000000,"burst":100000}' >/dev/null
}

# demo_start <portcullis binary> <gateway host:port> <upstream host:port>
demo_start() {
  local bin=$1 gw=$2 up=$3
  tmp=$(mktemp -d)
  export PORTCULLIS_SECRET=bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz
  export PORTCULLIS_DATA_DIR="$tmp"
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
  "$bin" sample-upstream --addr "$up" >"$tmp/upstream.log" 2>&1 & pids+=($!)
  RUST_LOG=warn "$bin" serve --demo --addr "$gw" --token-rate-limit 100000000 --source-refusal-limit 0 >"$tmp/gateway.log" 2>&1 &
  gw_pid=$!; pids+=($gw_pid)
  for _ in $(seq 100); do curl -fs "http://$gw/healthz" >/dev/null 2>&1 && curl -fs "http://$up/sample/accounts/accounts" >/dev/null 2>&1 && break; sleep 0.2; done
  demo_prepare "$bin" "$tmp/gateway.log" "$gw" "$up"
}
