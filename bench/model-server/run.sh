#!/usr/bin/env bash
# Benchmarks berth-model-server on loopback: builds it in release mode, makes
# the small `mlp` ONNX model (x FP32 [N,3] -> MatMul+Add -> Relu), starts the
# server on a free 127.0.0.1 port, drives its infer endpoint with 1, 8 and 64
# concurrent clients, and prints requests/s and p50/p99 latency per level.
#
# Bounded: each level stops after SECONDS_PER_LEVEL seconds (default 5) or
# MAX_REQUESTS requests (default 200000), whichever comes first.
# Prints figures; it is not a pass/fail test.
#
# Environment: CARGO_TARGET_DIR (where to build), SECONDS_PER_LEVEL,
# MAX_REQUESTS, CONCURRENCY (default 1,8,64), BATCH (rows per request, default 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
crate=$(cd "$here/../../crates/model-server" && pwd)
manifest="$crate/Cargo.toml"
onnx_version=1.20.1

target=$(cargo metadata --manifest-path "$manifest" --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

echo "== building (release) into $target" >&2
cargo build --release --manifest-path "$manifest" --bin berth-model-server --example bench >&2

work="$target/bench-model-server"
mkdir -p "$work"

python=python3
if ! python3 -c 'import onnx' 2>/dev/null; then
  venv="$target/tmp/onnx-$onnx_version-venv"
  if ! "$venv/bin/python" -c 'import onnx' 2>/dev/null; then
    echo "== installing onnx==$onnx_version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "onnx==$onnx_version"
  fi
  python="$venv/bin/python"
fi
"$python" "$crate/tests/make_models.py" "$work/models" >&2

log="$work/server.log"
"$target/release/berth-model-server" \
  --model-path "$work/models/mlp" --http-addr 127.0.0.1:0 2>"$log" &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
}
trap stop EXIT

addr=""
for _ in $(seq 1 300); do
  addr=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "server did not start" >&2; cat "$log" >&2; exit 1; }
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/v2/health/ready" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done

echo "== server pid $pid on $addr; $(nproc) CPUs shared by server and load generator" >&2
"$target/release/examples/bench" \
  --url "http://$addr" \
  --concurrency "${CONCURRENCY:-1,8,64}" \
  --seconds "${SECONDS_PER_LEVEL:-5}" \
  --max-requests "${MAX_REQUESTS:-200000}" \
  --batch "${BATCH:-1}"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
trap - EXIT
echo "== server exited with status $status after SIGTERM" >&2
