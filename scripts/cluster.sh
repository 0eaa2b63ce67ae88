#!/usr/bin/env bash
# Runs Portcullis as it runs in production, on one machine: three replicas on the local
# PostgreSQL and Redis behind nginx (round robin), until Ctrl-C or `cluster.sh stop`.
#
#   scripts/cluster.sh [--demo]   start, print the URL, stay in the foreground
#   scripts/cluster.sh stop       stop what a running cluster.sh started (another terminal)
#
# --demo seeds the sample products and a demo admin once (printed on the first start).
# The sample bank runs inside replica 1, so its products answer 502 while that one is down.
# Environment: CLUSTER_POSTGRES_URL (a server URL with the right to create a database;
# default postgres://postgres@127.0.0.1:5432/postgres), CLUSTER_REDIS_URL (default
# redis://127.0.0.1:6379), CLUSTER_PORT (nginx's port, default 8080; the replicas listen
# on the next three, 8081-8083, and serve their metrics on 8091-8093).
#
# Everything it writes is in .cluster/: the server secret (made once), each replica's
# data dir (its audit spill file) and log, nginx's config, logs and pid file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="$root/.cluster"
pids="$data/pids"

postgres_url=${CLUSTER_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${CLUSTER_REDIS_URL:-redis://127.0.0.1:6379}
port=${CLUSTER_PORT:-8080}
database=portcullis_cluster
public_url="http://127.0.0.1:$port"
replicas=(1 2 3)

say() { printf '==> %s\n' "$*" >&2; }

# Ends the processes listed in the pid file, each only if it still is what was started
# (a pid reused by something else is left alone): replicas by SIGTERM (they finish
# requests in flight and write their queued audit rows), nginx by SIGTERM too.
stop_all() {
  [ -f "$pids" ] || return 0
  local name pid waited ours=()
  while read -r name pid; do
    if [ -r "/proc/$pid/cmdline" ] && [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline")" == *"$name"* ]]; then
      ours+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done < "$pids"
  for pid in "${ours[@]}"; do
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 150 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "process $pid did not stop within 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$pids"
  say "cluster stopped"
}

demo=false
case "${1:-}" in
  stop) stop_all; exit 0 ;;
  --demo) demo=true ;;
  "") ;;
  *) echo "usage: $0 [--demo] | $0 stop" >&2; exit 2 ;;
esac

if [ -f "$pids" ]; then
  echo "a cluster is running (or was not stopped): $0 stop first" >&2
  exit 1
fi

bash "$root/scripts/install-tools.sh" --cluster
export PATH="$HOME/.cargo/bin:$PATH"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# A debug build: this cluster is for trying what several replicas do (failover, shared
# limits, revocations reaching every replica), not for measuring throughput (bench/ does
# that, on release builds); debug compiles in a fraction of the time and shares its build
# with `cargo test`. The portal's scripts and styles come from `cargo leptos build`
# (scripts/demo.sh); without them its pages still work, as plain forms.
say "building the server (debug)"
(cd "$root" && cargo build -p portcullis)
bin="${CARGO_TARGET_DIR:-$root/target}/debug/portcullis"
site="$root/target/site"
[ -d "$site/pkg" ] || say "no portal assets in $site (scripts/demo.sh builds them): pages come unstyled"

# Readable by nginx's workers (which run as nobody when started as root) for their
# temporary files; the secrets and the replicas' data dirs are the owner's alone.
mkdir -p "$data/nginx"

# One secret for all replicas: it keys the stored hashes of every credential, so a key
# issued through one replica verifies on the others. Made once; kept across starts.
if [ ! -s "$data/secret" ]; then
  (umask 077 && "$bin" generate-secret > "$data/secret")
fi

# The server migrates the schema of the database it is given, but does not create the
# database itself.
if [ "$(psql "$postgres_url" -Atc "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
  say "creating the database $database"
  psql "$postgres_url" -qc "CREATE DATABASE \"$database\""
fi
(umask 077 && printf '%s/%s\n' "${postgres_url%/*}" "$database" > "$data/database-url")

upstreams=""
for i in "${replicas[@]}"; do
  upstreams+="    server 127.0.0.1:$((port + i)) max_fails=1 fail_timeout=5s;"$'\n'
done
cat > "$data/nginx.conf" <<EOF
# Written by scripts/cluster.sh at each start: edits are lost.
daemon off;
worker_processes 1;
pid $data/nginx.pid;
error_log $data/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log $data/nginx-access.log;
  client_body_temp_path $data/nginx/body;
  proxy_temp_path $data/nginx/proxy;
  fastcgi_temp_path $data/nginx/fastcgi;
  uwsgi_temp_path $data/nginx/uwsgi;
  scgi_temp_path $data/nginx/scgi;
  # The replicas limit bodies themselves (--max-body, with the gateway's 413).
  client_max_body_size 0;

  upstream portcullis {
    # Round robin. A replica that fails a connection is left out for 5 s, then tried again.
$upstreams    keepalive 16;
  }

  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://portcullis;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      # nginx is the first hop here, so it states the client's address instead of
      # appending to one the client sent: with --trusted-proxies 127.0.0.1 the replicas
      # believe this header, and per-address limits and audit rows see the real client.
      proxy_set_header X-Forwarded-For \$remote_addr;
      # Portcullis takes its scheme from --public-url; this is for anything else behind.
      proxy_set_header X-Forwarded-Proto \$scheme;
      # Another replica only when this one could not be reached: a refused or reset
      # connection. Not on timeout or http_502/503/504: by then the replica may have
      # forwarded the request to its upstream, and a POST must not be sent twice (nginx
      # never retries a POST that reached a replica without "non_idempotent" either).
      proxy_next_upstream error;
      proxy_next_upstream_tries 3;
      # Longer than the replicas' --upstream-timeout (30 s), so their 504 gets through.
      proxy_read_timeout 60s;
      # Streamed answers (SSE from /mcp, streamed upstream bodies) pass as they come.
      proxy_buffering off;
      # Which replica answered: handy on a workstation, not something to publish.
      add_header X-Upstream \$upstream_addr always;
    }
  }
}
EOF

trap 'stop_all' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Replicas are started one after another; with --demo the first seeds (once, whatever
# the number of starts) and keeps the sample bank in its process, so the others start
# without it: racing seeds would each try to create the demo admin.
start_replica() {
  local i=$1
  shift
  mkdir -p -m 700 "$data/replica-$i"
  # Its log holds the demo admin's password on a first --demo start: the owner's alone.
  (umask 077 && exec "$bin" serve \
    --addr "127.0.0.1:$((port + i))" \
    --metrics-addr "127.0.0.1:$((port + 10 + i))" \
    --public-url "$public_url" \
    --database-url-file "$data/database-url" \
    --secret-file "$data/secret" \
    --redis-url "$redis_url" \
    --trusted-proxies 127.0.0.1 \
    --data-dir "$data/replica-$i" \
    --site-root "$site" \
    --shutdown-timeout 10 \
    "$@" > "$data/replica-$i.log" 2>&1) &
  echo "portcullis $!" >> "$pids"
  local waited=0
  until grep -qs "Portcullis is listening" "$data/replica-$i.log"; do
    if ! kill -0 "$!" 2>/dev/null || [ "$waited" -ge 600 ]; then
      cat "$data/replica-$i.log" >&2
      echo "replica $i did not start (log above, $data/replica-$i.log)" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

: > "$pids"
for i in "${replicas[@]}"; do
  say "starting replica $i on 127.0.0.1:$((port + i))"
  if $demo && [ "$i" -eq 1 ]; then
    start_replica "$i" --demo
  else
    start_replica "$i"
  fi
done

"$nginx_bin" -p "$data/nginx" -c "$data/nginx.conf" -e "$data/nginx-error.log" &
echo "nginx $!" >> "$pids"
waited=0
until curl -fsS -o /dev/null "$public_url/healthz"; do
  if [ "$waited" -ge 50 ]; then
    cat "$data/nginx-error.log" >&2 || true
    echo "nginx did not start (log above)" >&2
    exit 1
  fi
  sleep 0.1
  waited=$((waited + 1))
done

if $demo; then
  sed -n '/demo is seeded/,/agent secret/p' "$data/replica-1.log"
fi
replica_urls="" metrics_urls=""
for i in "${replicas[@]}"; do
  replica_urls+="http://127.0.0.1:$((port + i))  "
  metrics_urls+="http://127.0.0.1:$((port + 10 + i))/metrics  "
done
cat <<EOF

  Portcullis runs at $public_url (nginx, round robin over three replicas)

    replicas   $replica_urls
    metrics    $metrics_urls
    database   $(cat "$data/database-url"), Redis $redis_url
    logs       $data/replica-N.log, $data/nginx-*.log; pids in $pids

  The first admin, if there is none yet:
    echo 'a long passphrase here' | $bin admin create-user --email ops@example.com --role admin \\
      --database-url-file $data/database-url --secret-file $data/secret

  Ctrl-C (or $0 stop) stops everything. Kill one replica to watch nginx route around it.
EOF

# Until every process has ended (a replica killed by hand is not the end: the others
# serve on), or until Ctrl-C.
wait
