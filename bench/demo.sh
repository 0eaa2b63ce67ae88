# Sourced by bench/run.sh and bench/dpop.sh (it starts nothing itself). After a demo
# gateway and the sample upstream are up, `demo_prepare` reads the demo agent's
# credentials from the gateway's log, makes an admin token, points Accounts at the
# separate upstream and lifts the agent's rate limit out of the way (the limiter still
# runs on every request). It sets `client`, `profile`, `secret` and `admin`.

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
