#!/usr/bin/env bash
# Side-by-side load runs on this machine: a release build of the Lockspire demo host (SQLite,
# then PostgreSQL) and the npm oidc-provider package, same scenarios, same load generator.
# Prints a table of requests/s and latency, and the Lockspire/peer ratios.
#
#   bench/compare.sh                 # 10 s per scenario, 20 connections
#   DURATION=5 CONCURRENCY=20 bench/compare.sh
#
# Needs: cargo, node + npm (the peer is installed from the npm registry into
# bench/oidc-provider/node_modules), PostgreSQL on 127.0.0.1:5432 for the second run
# (skipped when unreachable). Everything listens on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-20}
PG=${LOCKSPIRE_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
OUT=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

cargo build --quiet --release -p lockspire-demo -p lockspire-bench
BENCH=target/release/lockspire-bench
DEMO=target/release/lockspire-demo
(cd bench/oidc-provider && npm install --no-audit --no-fund --silent)

# A server left over on one of these ports would be measured instead of the one started here.
for port in 4010 4011 4100; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: stop whatever listens there first" >&2; exit 1
  fi
done

wait_for() { for _ in $(seq 1 100); do curl -sf "$1/.well-known/openid-configuration" >/dev/null && return 0; sleep 0.1; done; echo "no server at $1" >&2; return 1; }

run_lockspire() { # name database-url port
  local name=$1 db=$2 port=$3 dir
  dir=$(mktemp -d)
  LOCKSPIRE_SECRET_KEY=$(head -c 32 /dev/urandom | base64) RUST_LOG=warn \
    "$DEMO" --addr "127.0.0.1:$port" --database-url "$db" --data-dir "$dir" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  wait_for "http://127.0.0.1:$port"
  "$BENCH" --issuer "http://127.0.0.1:$port" --duration "$DURATION" --concurrency "$CONCURRENCY" \
    --server-pid "$pid" --json >"$OUT/$name.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "Lockspire (SQLite)…" >&2
run_lockspire sqlite "sqlite://$OUT/bench.db" 4010
if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "Lockspire (PostgreSQL)…" >&2
  DB=lockspire_bench_$$
  psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
  run_lockspire postgres "$PG/$DB" 4011
  psql "$PG/postgres" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null
fi

# A fresh peer per scenario: its in-memory adapter keeps every issued token on the JavaScript
# heap, and the garbage collector then slows the scenarios that follow. Restarting favours the
# peer; Lockspire runs every scenario on one process and one growing database.
echo "oidc-provider…" >&2
: >"$OUT/peer.json"
for scenario in client-credentials client-credentials-dpop introspection jwks discovery; do
  NODE_ENV=production PORT=4100 node bench/oidc-provider/server.mjs >>"$OUT/peer.log" 2>&1 &
  PEER=$!
  wait_for "http://127.0.0.1:4100"
  "$BENCH" --issuer http://127.0.0.1:4100 --scenarios "$scenario" --client-id bench \
    --client-secret bench-secret-bench-secret-bench-secret --duration "$DURATION" \
    --concurrency "$CONCURRENCY" --server-pid "$PEER" --json >>"$OUT/peer.json"
  kill "$PEER"; wait "$PEER" 2>/dev/null || true
done

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return {}, None
    rows, rss = {}, None
    for line in open(path):
        d = json.loads(line)
        if "scenario" in d: rows[d["scenario"]] = d
        else: rss = max(rss or 0, d.get("server_peak_rss_kib") or 0)
    return rows, rss
runs = [(n, *load(n)) for n in ("sqlite", "postgres", "peer")]
peer = runs[2][1]
print(f"{'scenario':<24}" + "".join(f"{n + ' req/s':>16}{'p99 ms':>9}{'µs/req':>8}" for n, _, _ in runs)
      + f"{'sqlite/peer':>13}{'pg/peer':>10}{'cpu peer/sqlite':>17}{'cpu peer/pg':>13}")
cpu = lambda r: r.get("server_cpu_us_per_request") if r else None
for s in ["client_credentials", "client_credentials_jwt", "client_credentials_dpop", "introspection", "refresh", "jwks", "discovery", "userinfo", "authorization_code", "api_jwt", "api_jwt_dpop"]:
    line = f"{s:<24}"
    for _, rows, _ in runs:
        r = rows.get(s)
        line += f"{r['per_second']:>16.0f}{r['p99_ms']:>9.2f}{cpu(r) or 0:>8.0f}" if r else f"{'-':>16}{'-':>9}{'-':>8}"
    for n in (0, 1):
        a, b = runs[n][1].get(s), peer.get(s)
        line += f"{a['per_second'] / b['per_second']:>12.1f}x" if a and b and b["per_second"] else f"{'-':>13}"
    # Server CPU per request, peer over Lockspire: how much less work each request costs,
    # whatever else (the load generator) shares the cores.
    for n, width in ((0, 16), (1, 12)):
        a, b = cpu(runs[n][1].get(s)), cpu(peer.get(s))
        line += f"{b / a:>{width}.1f}x" if a and b else f"{'-':>{width + 1}}"
    print(line)
print("peak RSS MiB: " + ", ".join(f"{n} {rss / 1024:.1f}" for n, _, rss in runs if rss))
PY
