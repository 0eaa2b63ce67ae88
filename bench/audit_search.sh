#!/usr/bin/env bash
# Audit search at scale: generates ROWS gateway-request rows in audit_events and times
# the security team's searches (client + time range, first and deep pages; time range
# alone) through Store::search_audit, on SQLite and, when reachable, PostgreSQL.
# Targets: p95 <= 100 ms on SQLite, <= 50 ms on PostgreSQL. Then the security console's
# 30-day aggregates on the same rows (security_dashboard, client_activity for the heaviest
# and the lightest client, access_review), each query explained.
#
# Settings (environment):
#   ROWS=10000000        rows to generate (reused when the database already holds them)
#   SAMPLES=100          searches per measured case (at least)
#   BACKENDS="sqlite postgres"
#   SEARCHES=1 / AGGREGATES=1   0 skips the searches (--no-searches) / the aggregates
#                               (without --aggregates); the aggregates add profiles,
#                               credentials, products and grants for the bench clients
#   SQLITE_STATS="analyzed none"   SQLite after ANALYZE, and without planner statistics
#                                  (as the server runs SQLite: nothing in it runs ANALYZE)
#   AUDIT_BENCH_DIR=bench/.data     where the SQLite file lives (kept for re-runs)
#   BENCH_DATABASE_URL=postgres://…  use this PostgreSQL database as is (never dropped)
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres  otherwise: create PG_DB there…
#   PG_DB=portcullis_bench_audit    …and drop it at the end unless KEEP_PG_DB=1
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

ROWS=${ROWS:-10000000}
SAMPLES=${SAMPLES:-100}
BACKENDS=${BACKENDS:-"sqlite postgres"}
SQLITE_STATS=${SQLITE_STATS:-"analyzed none"}
AUDIT_BENCH_DIR=${AUDIT_BENCH_DIR:-$root/bench/.data}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=${PG_DB:-portcullis_bench_audit}
KEEP_PG_DB=${KEEP_PG_DB:-0}
SEARCHES=${SEARCHES:-1}
AGGREGATES=${AGGREGATES:-1}
flags=(--plans)
if [ "$SEARCHES" != 1 ]; then flags+=(--no-searches); fi
if [ "$AGGREGATES" = 1 ]; then flags+=(--aggregates); fi

cargo build --release -p portcullis-domain --example audit_search_bench --quiet
bin="$root/target/release/examples/audit_search_bench"
run() { "$bin" --database-url "$@" --rows "$ROWS" --samples "$SAMPLES" "${flags[@]}"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM; $(date -u +%Y-%m-%d)"

for backend in $BACKENDS; do
  case $backend in
  sqlite)
    mkdir -p "$AUDIT_BENCH_DIR"
    # Gitignored (*.db); delete it to regenerate.
    for stats in $SQLITE_STATS; do
      case $stats in
      analyzed) run "sqlite:$AUDIT_BENCH_DIR/audit_search_$ROWS.db" ;;
      none) run "sqlite:$AUDIT_BENCH_DIR/audit_search_$ROWS.db" --no-stats ;;
      *) echo "unknown SQLITE_STATS value $stats" >&2 && exit 2 ;;
      esac
    done
    ;;
  postgres)
    if [ -n "${BENCH_DATABASE_URL:-}" ]; then
      run "$BENCH_DATABASE_URL"
      continue
    fi
    if ! command -v psql >/dev/null || ! psql "$PG_ADMIN_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; then
      echo "PostgreSQL not reachable at $PG_ADMIN_URL (set BENCH_DATABASE_URL or PG_ADMIN_URL); skipped"
      continue
    fi
    if [ "$(psql "$PG_ADMIN_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
      psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null
    fi
    if [ "$KEEP_PG_DB" != 1 ]; then
      trap 'psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null && echo "dropped $PG_DB (KEEP_PG_DB=1 keeps it)"' EXIT
    fi
    run "${PG_ADMIN_URL%/*}/$PG_DB"
    ;;
  *)
    echo "unknown backend $backend" >&2
    exit 2
    ;;
  esac
done
