#!/usr/bin/env bash
# Model serving, side by side on one machine, one load generator:
#   berth       berth-model-server (release), tract, the `mlp` ONNX model
#   floor       bench's http-floor: the same HTTP stack (axum/hyper, tokio), answering every request
#               with the bytes berth-model-server answered, so only inference is left between them
#   kserve      KServe's Python ModelServer (kserve 0.21.0) with onnxruntime 1.31.1, same model,
#               1 worker (its default)
#   kserve-Nw   the same with as many workers as cores
# driven by wrk 4.1.0 (Debian) with the same POST body at 1, 8 and 64 connections, each level
# SECONDS_PER_RUN seconds, REPEATS times, the servers interleaved within each repeat (the order
# rotates). Prints one line per run and a summary: median and range of req/s, p50, p99 and errors
# (non-2xx answers plus socket errors, counted, not only successes). Nothing is asserted.
#
#   bench/model-server/run.sh
# Environment: SECONDS_PER_RUN (default 10), REPEATS (default 3), CLIENTS (default "1 8 64"),
# SERVERS (default "berth floor kserve kserve-Nw"), OUT (raw results, default
# target/bench-model-server/runs.tsv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
seconds=${SECONDS_PER_RUN:-10}
repeats=${REPEATS:-3}
clients=${CLIENTS:-"1 8 64"}
cores=$(nproc)
servers=${SERVERS:-"berth floor kserve kserve-${cores}w"}
onnx_version=1.20.1
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work="$target/bench-model-server"
out=${OUT:-$work/runs.tsv}
mkdir -p "$work"

echo "== building berth-model-server and http-floor (release)" >&2
cargo build --release -p berth-model-server -p berth-bench --bin berth-model-server --bin http-floor >&2
echo "== pinned tools (tools/bench-tools/install.sh)" >&2
tools=$(tools/bench-tools/install.sh | tail -n 1)
kserve_python="$tools/kserve/bin/python"

venv="$target/tmp/onnx-$onnx_version-venv"
if ! "$venv/bin/python" -c 'import onnx' 2>/dev/null; then
  echo "== installing onnx==$onnx_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "onnx==$onnx_version"
fi
"$venv/bin/python" crates/model-server/tests/make_models.py "$work/models" >&2
model="$work/models/mlp/model.onnx"

pids=()
stop_all() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_all EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # URL LOG
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2; tail -20 "$2" >&2; exit 1
}

body='{"id":"bench","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1.0,2.0,3.0]}]}'
lua="$work/post.lua"
python3 - "$body" >"$lua" <<'PY'
import json, sys
print("wrk.method = \"POST\"")
print("wrk.headers[\"Content-Type\"] = \"application/json\"")
print("wrk.body = " + json.dumps(sys.argv[1]))
PY

declare -A url
start_berth() {
  local port; port=$(free_port)
  target/release/berth-model-server --model-path "$work/models/mlp" --http-addr "127.0.0.1:$port" 2>"$work/berth.log" &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port/v2/health/ready" "$work/berth.log"
  url[berth]="http://127.0.0.1:$port/v2/models/mlp/infer"
  curl -s -X POST -H 'Content-Type: application/json' -d "$body" "${url[berth]}" >"$work/berth-response.json"
}
start_floor() {
  local port; port=$(free_port)
  target/release/http-floor --addr "127.0.0.1:$port" --response "$work/berth-response.json" 2>"$work/floor.log" &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port/" "$work/floor.log"
  url[floor]="http://127.0.0.1:$port/v2/models/mlp/infer"
}
start_kserve() { # NAME WORKERS
  local port grpc; port=$(free_port); grpc=$(free_port)
  "$kserve_python" "$here/kserve_onnx.py" --model_name mlp --model_path "$model" \
    --http_port "$port" --grpc_port "$grpc" --workers "$2" >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port/v2/models/mlp/ready" "$work/$1.log"
  url[$1]="http://127.0.0.1:$port/v2/models/mlp/infer"
}

for s in $servers; do
  echo "== starting $s" >&2
  case $s in
    berth) start_berth ;;
    floor) [ -n "${url[berth]:-}" ] || start_berth; start_floor ;;
    kserve) start_kserve kserve 1 ;;
    kserve-*w) n=${s#kserve-}; start_kserve "$s" "${n%w}" ;;
    *) echo "unknown server $s" >&2; exit 2 ;;
  esac
done
# Every server must compute the same answer before anything is timed.
for s in $servers; do
  [ "$s" = floor ] && continue
  got=$(curl -s -X POST -H 'Content-Type: application/json' -d "$body" "${url[$s]}" |
    python3 -c 'import json,sys; o=json.load(sys.stdin)["outputs"]; print(json.dumps(sorted((x["name"], [round(v, 5) for v in x["data"]]) for x in o)))')
  echo "== $s answers $got" >&2
  [ -z "${want:-}" ] && want=$got
  [ "$got" = "$want" ] || { echo "$s answers differently from the first server: $got vs $want" >&2; exit 1; }
done

# One wrk run: prints "req/s p50_ms p99_ms errors requests".
run_wrk() { # URL CLIENTS
  local threads=$(( $2 < cores ? $2 : cores ))
  wrk -t "$threads" -c "$2" -d "${seconds}s" --latency -s "$lua" "$1" | python3 "$here/wrk_summary.py"
}

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates/model-server bench || echo "+dirty")
echo "== $(date -u +%FT%TZ) commit $commit, $cores cores shared by servers and wrk, ${seconds}s per run, $repeats repeats" >&2
printf 'repeat\tserver\tclients\treq_s\tp50_ms\tp99_ms\terrors\trequests\tload_1m\n' >"$out"
set -- $servers
n_servers=$#
for r in $(seq 1 "$repeats"); do
  for c in $clients; do
    for i in $(seq 0 $((n_servers - 1))); do
      idx=$(( (i + r - 1) % n_servers + 1 ))
      s=${!idx}
      load=$(cut -d' ' -f1 /proc/loadavg)
      figures=$(run_wrk "${url[$s]}" "$c")
      printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "$c" "$(echo "$figures" | tr ' ' '\t')" "$load" >>"$out"
      echo "   repeat $r, $c clients, $s: $figures (req/s p50 p99 errors requests), load $load" >&2
    done
  done
done

python3 - "$out" "$servers" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
servers = sys.argv[2].split()
def cell(vals, digits):
    vals = sorted(vals)
    med = statistics.median(vals)
    if vals[0] == vals[-1]:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({vals[0]:.{digits}f}–{vals[-1]:.{digits}f})"
print("| clients | server | req/s | vs floor | p50 ms | p99 ms | p99 vs floor | errors (sum) | load (1 min) |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for c in sorted({int(r["clients"]) for r in rows}):
    med = {}
    for s in servers:
        rs = [r for r in rows if r["server"] == s and int(r["clients"]) == c]
        med[s] = (statistics.median(float(r["req_s"]) for r in rs), statistics.median(float(r["p99_ms"]) for r in rs))
    for s in servers:
        rs = [r for r in rows if r["server"] == s and int(r["clients"]) == c]
        f = med.get("floor")
        vs = f"{med[s][0] / f[0]:.2f}×" if f else "-"
        p99vs = f"{med[s][1] / f[1]:.2f}×" if f else "-"
        print(f"| {c} | {s} | {cell([float(r['req_s']) for r in rs], 0)} | {vs} | "
              f"{cell([float(r['p50_ms']) for r in rs], 3)} | {cell([float(r['p99_ms']) for r in rs], 3)} | {p99vs} | "
              f"{sum(int(r['errors']) for r in rs)} of {sum(int(r['requests']) for r in rs)} | "
              f"{cell([float(r['load_1m']) for r in rs], 1)} |")
PY
