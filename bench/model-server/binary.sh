#!/usr/bin/env bash
# The binary tensor data extension against JSON, for one large request: berth-model-server
# (release) on the `mlp` ONNX model, one request of a 1 MiB FP32 tensor (x: [87381, 3], random
# values in [-1, 1]), sent and answered three ways:
#   json     JSON input, JSON outputs (the body is the values' decimal text)
#   binary   binary input, binary outputs (Inference-Header-Content-Length, raw little-endian bytes)
#   bin-in   binary input, JSON outputs
# driven by wrk 4.1.0 at each of CLIENTS connections, SECONDS_PER_RUN seconds a run, REPEATS
# times, the modes interleaved within each repeat (the order rotates). Before timing, every mode
# must answer 200 with the same numbers. Prints one line per run and a summary: median and
# range of req/s, p50 and p99, and the request and response sizes. Nothing is asserted.
#
#   bench/model-server/binary.sh
# Environment: SECONDS_PER_RUN (default 5), REPEATS (default 3), CLIENTS (default "1 4"),
# SERVER_BIN (a server binary instead of building one), OUT (raw results, default
# target/bench-model-server/binary-runs.tsv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
seconds=${SECONDS_PER_RUN:-5}
repeats=${REPEATS:-3}
clients=${CLIENTS:-"1 4"}
modes="json binary bin-in"
cores=$(nproc)
onnx_version=1.20.1
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work="$target/bench-model-server"
out=${OUT:-$work/binary-runs.tsv}
mkdir -p "$work"

if [ -n "${SERVER_BIN:-}" ]; then
  server=$SERVER_BIN
else
  echo "== building berth-model-server (release)" >&2
  cargo build --release -p berth-model-server --bin berth-model-server >&2
  server="$target/release/berth-model-server"
fi
venv="$target/tmp/onnx-$onnx_version-venv"
if ! "$venv/bin/python" -c 'import onnx' 2>/dev/null; then
  echo "== installing onnx==$onnx_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "onnx==$onnx_version"
fi
"$venv/bin/python" crates/model-server/tests/make_models.py "$work/models" >&2

echo "== writing the request bodies" >&2
python3 - "$work" <<'PY'
import json, random, struct, sys
work = sys.argv[1]
rows = (1 << 20) // 12  # 87381 rows of 3 FP32 values: 1 MiB less 4 bytes
random.seed(12)
values = [random.uniform(-1.0, 1.0) for _ in range(rows * 3)]
raw = struct.pack(f"<{len(values)}f", *values)
# The JSON body carries the same f32 values, printed so they parse back exactly.
exact = struct.unpack(f"<{len(values)}f", raw)
def write(name, header, binary=b"", extra_headers=()):
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(f"{work}/{name}.body", "wb") as f:
        f.write(text + binary)
    lua = ['wrk.method = "POST"']
    if binary:
        lua.append('wrk.headers["Content-Type"] = "application/octet-stream"')
        lua.append(f'wrk.headers["Inference-Header-Content-Length"] = "{len(text)}"')
    else:
        lua.append('wrk.headers["Content-Type"] = "application/json"')
    lua.append(f'local f = io.open("{work}/{name}.body", "rb")')
    lua.append("wrk.body = f:read(\"*a\")")
    lua.append("f:close()")
    with open(f"{work}/{name}.lua", "w") as f:
        f.write("\n".join(lua) + "\n")
    with open(f"{work}/{name}.header-length", "w") as f:
        f.write(str(len(text)) if binary else "")
x = {"name": "x", "shape": [rows, 3], "datatype": "FP32"}
write("json", {"inputs": [dict(x, data=[float(v) for v in exact])]})
binary_x = dict(x, parameters={"binary_data_size": len(raw)})
write("binary", {"inputs": [binary_x], "parameters": {"binary_data_output": True}}, raw)
write("bin-in", {"inputs": [binary_x]}, raw)
PY

pid=
stop() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap stop EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" --model-path "$work/models/mlp" --http-addr "127.0.0.1:$port" --metrics-addr 127.0.0.1:0 2>"$work/binary-server.log" &
pid=$!
for _ in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/health/ready" || true)" = 200 ] && break
  sleep 0.1
done
url="http://127.0.0.1:$port/v2/models/mlp/infer"

# Every mode must answer 200 with the same numbers before anything is timed.
declare -A request_bytes response_bytes
for m in $modes; do
  hl=$(cat "$work/$m.header-length")
  args=(-s -D "$work/$m.headers" -o "$work/$m.response" -X POST --data-binary "@$work/$m.body")
  if [ -n "$hl" ]; then
    args+=(-H 'Content-Type: application/octet-stream' -H "Inference-Header-Content-Length: $hl")
  else
    args+=(-H 'Content-Type: application/json')
  fi
  code=$(curl "${args[@]}" -w '%{http_code}' "$url")
  [ "$code" = 200 ] || { echo "$m answered $code: $(head -c 300 "$work/$m.response")" >&2; exit 1; }
  request_bytes[$m]=$(stat -c %s "$work/$m.body")
  response_bytes[$m]=$(stat -c %s "$work/$m.response")
  python3 - "$work/$m.headers" "$work/$m.response" "$work/$m.sum" <<'PY'
import json, struct, sys
headers = open(sys.argv[1]).read().lower()
body = open(sys.argv[2], "rb").read()
hl = [l.split(":")[1].strip() for l in headers.splitlines() if l.startswith("inference-header-content-length:")]
n = int(hl[0]) if hl else len(body)
doc = json.loads(body[:n])
rest, sums = body[n:], {}
for o in doc["outputs"]:
    size = o.get("parameters", {}).get("binary_data_size")
    if size is None:
        vals = o["data"]
    else:
        vals, rest = struct.unpack(f"<{size // 4}f", rest[:size]), rest[size:]
    sums[o["name"]] = round(sum(vals), 1)
open(sys.argv[3], "w").write(json.dumps(sums, sort_keys=True))
PY
  echo "== $m: request ${request_bytes[$m]} bytes, response ${response_bytes[$m]} bytes, output sums $(cat "$work/$m.sum")" >&2
  cmp -s "$work/json.sum" "$work/$m.sum" || { echo "$m answers differently from json" >&2; exit 1; }
done

run_wrk() { # MODE CLIENTS: prints "req/s p50_ms p99_ms errors requests"
  local threads=$(( $2 < cores ? $2 : cores ))
  wrk -t "$threads" -c "$2" -d "${seconds}s" --latency -s "$work/$1.lua" "$url" | python3 "$here/wrk_summary.py" 2 1
}

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates/model-server bench || echo "+dirty")
echo "== $(date -u +%FT%TZ) commit $commit, $cores cores shared by the server and wrk, ${seconds}s per run, $repeats repeats" >&2
printf 'repeat\tmode\tclients\treq_s\tp50_ms\tp99_ms\terrors\trequests\tload_1m\n' >"$out"
set -- $modes
for r in $(seq 1 "$repeats"); do
  for c in $clients; do
    for i in 0 1 2; do
      idx=$(( (i + r - 1) % 3 + 1 ))
      m=${!idx}
      load=$(cut -d' ' -f1 /proc/loadavg)
      figures=$(run_wrk "$m" "$c")
      printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$m" "$c" "$(echo "$figures" | tr ' ' '\t')" "$load" >>"$out"
      echo "   repeat $r, $c clients, $m: $figures (req/s p50 p99 errors requests), load $load" >&2
    done
  done
done

python3 - "$out" "$modes" "${request_bytes[json]} ${request_bytes[binary]} ${request_bytes[bin-in]}" \
  "${response_bytes[json]} ${response_bytes[binary]} ${response_bytes[bin-in]}" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
modes = sys.argv[2].split()
req = dict(zip(modes, sys.argv[3].split()))
resp = dict(zip(modes, sys.argv[4].split()))
def cell(vals, digits):
    vals = sorted(vals)
    med = statistics.median(vals)
    return f"{med:.{digits}f}" if vals[0] == vals[-1] else f"{med:.{digits}f} ({vals[0]:.{digits}f}–{vals[-1]:.{digits}f})"
print("| clients | mode | request bytes | response bytes | req/s | vs json | p50 ms | p99 ms | errors |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for c in sorted({int(r["clients"]) for r in rows}):
    med = {m: statistics.median(float(r["req_s"]) for r in rows if r["mode"] == m and int(r["clients"]) == c) for m in modes}
    for m in modes:
        rs = [r for r in rows if r["mode"] == m and int(r["clients"]) == c]
        print(f"| {c} | {m} | {req[m]} | {resp[m]} | {cell([float(r['req_s']) for r in rs], 2)} | "
              f"{med[m] / med['json']:.2f}× | {cell([float(r['p50_ms']) for r in rs], 1)} | "
              f"{cell([float(r['p99_ms']) for r in rs], 1)} | {sum(int(r['errors']) for r in rs)} of {sum(int(r['requests']) for r in rs)} |")
PY
