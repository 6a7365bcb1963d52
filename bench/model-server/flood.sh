#!/usr/bin/env bash
# Model-server memory under a flood of large requests (issue 12): starts berth-model-server on
# the `mlp` ONNX model (input x: FP32 [N, 3]) once per kind of request, sends REQUESTS requests
# at once with bodies of MIN_MIB-MAX_MIB MiB (see flood.py: `raw` "0,0,...", `mismatch` JSON
# whose data does not fit its shape, `valid` JSON tensors the model runs, `binary` the same with
# the binary data extension), and prints per kind
# the count of each status code and the server's peak RSS (VmHWM of /proc/<pid>/status) beside
# its memory budget (--memory-budget-bytes, as the server logs it). Nothing is asserted.
#
#   bench/model-server/flood.sh
# Environment: REQUESTS (default 64), MIN_MIB/MAX_MIB (default 8/64), KINDS (default
# "raw mismatch valid binary"), PROFILE (release or debug build, default release), SERVER_BIN (a
# server binary to measure instead of building one, e.g. an older build), SERVER_ARGS (more
# flags, e.g. "--memory-budget-bytes 268435456 --inference-threads 2"), GLIBC_TUNABLES (default:
# the model-server image's, glibc.malloc.mmap_threshold=131072; set it empty to measure glibc's
# defaults).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
requests=${REQUESTS:-64}
min_mib=${MIN_MIB:-8}
max_mib=${MAX_MIB:-64}
kinds=${KINDS:-"raw mismatch valid binary"}
profile=${PROFILE:-release}
onnx_version=1.20.1
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work="$target/bench-model-server"
mkdir -p "$work"

if [ -n "${SERVER_BIN:-}" ]; then
  server=$SERVER_BIN
else
  echo "== building berth-model-server ($profile)" >&2
  if [ "$profile" = release ]; then
    cargo build --release -p berth-model-server --bin berth-model-server >&2
  else
    cargo build -p berth-model-server --bin berth-model-server >&2
  fi
  server="$target/$profile/berth-model-server"
fi

venv="$target/tmp/onnx-$onnx_version-venv"
if ! "$venv/bin/python" -c 'import onnx' 2>/dev/null; then
  echo "== installing onnx==$onnx_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "onnx==$onnx_version"
fi
"$venv/bin/python" crates/model-server/tests/make_models.py "$work/models" >&2

pid=
stop() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
trap stop EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates/model-server bench || echo "+dirty")
echo "== $(date -u +%FT%TZ) commit $commit, server $server, $(nproc) cores, args: ${SERVER_ARGS:-(none)}" >&2
for kind in $kinds; do
  port=$(free_port)
  log="$work/flood-$kind.log"
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
  # The image's malloc tuning (xtask/src/images/contents.rs), unless the caller sets its own.
  GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.mmap_threshold=131072} RUST_LOG=info "$server" --model-path "$work/models/mlp" --http-addr "127.0.0.1:$port" \
    --metrics-addr 127.0.0.1:0 ${SERVER_ARGS:-} 2>"$log" &
  pid=$!
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/health/ready" || true)" = 200 ] && break
    sleep 0.1
  done
  budget=$(sed -n 's/.*budget_bytes=\([0-9]*\).*/\1/p' "$log" | head -n 1)
  python3 "$here/flood.py" "$port" /v2/models/mlp/infer "$kind" "$pid" "$requests" "$min_mib" "$max_mib" "${budget:-0}"
  stop
done
