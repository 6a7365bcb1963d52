#!/usr/bin/env bash
# Benchmark of berth-model-fetch against the usual tools, on loopback only.
#
#   bench/model-fetch/run.sh [SIZE_MIB]      (default 1024)
#
# 1. HTTPS: a SIZE_MIB object served by the crate's loopback HTTPS server
#    (examples/serve.rs), downloaded by berth-model-fetch (with --sha256) and by curl.
# 2. S3: the same-size object in a MinIO started here (if its binary is cached in
#    ~/.cache/berth/minio-fetch-tests/bin/minio or BERTH_MINIO_BIN; see the crate's
#    README), downloaded by berth-model-fetch and by `aws s3 cp` (awscli from PyPI in
#    a venv under ~/.cache/berth/model-fetch-bench/).
# Prints throughput (MiB/s) and peak RSS (from /usr/bin/time, i.e. the kernel's
# ru_maxrss of the real process) for each. Every step is time-bounded; all files are
# removed on exit.
set -euo pipefail

SIZE_MIB="${1:-1024}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CRATE="$(cd "$HERE/../../crates/model-fetch" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-model-fetch}"
CACHE="$HOME/.cache/berth"
MINIO_BIN="${BERTH_MINIO_BIN:-$CACHE/minio-fetch-tests/bin/minio}"
VENV="$CACHE/model-fetch-bench/venv"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

echo "building berth-model-fetch and the bench server (release)..." >&2
(cd "$CRATE" && timeout 1200 cargo build --release --quiet --bin berth-model-fetch --example serve)
FETCH="$CARGO_TARGET_DIR/release/berth-model-fetch"
SERVE="$CARGO_TARGET_DIR/release/examples/serve"

RESULTS=()
# measure LABEL CMD... : runs CMD under /usr/bin/time (bounded to 600 s), records MiB/s and peak RSS.
measure() {
    local label="$1"; shift
    local tf="$WORK/time.txt"
    sync
    if ! timeout 600 /usr/bin/time -f "%e %M" -o "$tf" "$@" >"$WORK/out.log" 2>&1; then
        echo "FAILED: $label" >&2; tail -5 "$WORK/out.log" >&2
        RESULTS+=("$(printf '%-44s %10s %14s' "$label" failed -)")
        return 0
    fi
    read -r secs kib <"$tf"
    RESULTS+=("$(awk -v l="$label" -v s="$secs" -v k="$kib" -v m="$SIZE_MIB" \
        'BEGIN { printf "%-44s %10.1f %14.1f", l, (s > 0 ? m / s : 0), k / 1024 }')")
}

# ---- HTTPS -------------------------------------------------------------------------
SIZE=$((SIZE_MIB * 1024 * 1024))
"$SERVE" "$SIZE" "$WORK/ca.pem" >"$WORK/serve.out" &
PIDS+=($!)
for _ in $(seq 1 300); do [ -s "$WORK/serve.out" ] && break; sleep 0.1; done
read -r URL SHA <"$WORK/serve.out"
echo "HTTPS: $URL ($SIZE_MIB MiB)" >&2

measure "https  berth-model-fetch (--sha256)" \
    "$FETCH" --quiet --ca-file "$WORK/ca.pem" --sha256 "$SHA" "$URL" "$WORK/dl-fetch"
got=$(sha256sum "$WORK/dl-fetch/blob" | cut -d' ' -f1); [ "$got" = "$SHA" ] || echo "WARNING: berth-model-fetch output sha mismatch" >&2
rm -rf "$WORK/dl-fetch"
measure "https  berth-model-fetch (no sha)" \
    "$FETCH" --quiet --ca-file "$WORK/ca.pem" "$URL" "$WORK/dl-fetch"
rm -rf "$WORK/dl-fetch"
measure "https  curl" curl -sS --fail --cacert "$WORK/ca.pem" -o "$WORK/dl-curl.bin" "$URL"
rm -f "$WORK/dl-curl.bin"
kill "${PIDS[0]}" 2>/dev/null || true

# ---- S3 (MinIO) ----------------------------------------------------------------------
if [ -x "$MINIO_BIN" ]; then
    if [ ! -x "$VENV/bin/aws" ]; then
        echo "installing awscli into $VENV ..." >&2
        python3 -m venv "$VENV"
        timeout 600 "$VENV/bin/pip" install --quiet awscli
    fi
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    CPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    export AWS_ACCESS_KEY_ID="bench$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export AWS_SECRET_ACCESS_KEY="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
    MINIO_ROOT_USER="$AWS_ACCESS_KEY_ID" MINIO_ROOT_PASSWORD="$AWS_SECRET_ACCESS_KEY" MINIO_BROWSER=off MINIO_UPDATE=off \
        "$MINIO_BIN" server --quiet --address "127.0.0.1:$PORT" --console-address "127.0.0.1:$CPORT" "$WORK/minio-data" \
        >"$WORK/minio.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do curl -sf "$AWS_ENDPOINT_URL/minio/health/live" >/dev/null && break; sleep 0.2; done
    AWS="$VENV/bin/aws"
    timeout 60 "$AWS" s3 mb s3://bench >/dev/null
    # Upload the same pattern (streamed from the HTTPS server would need it alive; regenerate locally).
    head -c "$SIZE" /dev/urandom >"$WORK/src.bin"
    timeout 600 "$AWS" s3 cp --only-show-errors "$WORK/src.bin" s3://bench/model.bin
    SRC_SHA=$(sha256sum "$WORK/src.bin" | cut -d' ' -f1)
    rm -f "$WORK/src.bin"
    echo "S3: MinIO at $AWS_ENDPOINT_URL, s3://bench/model.bin ($SIZE_MIB MiB)" >&2
    measure "s3     berth-model-fetch (--sha256)" "$FETCH" --quiet --sha256 "$SRC_SHA" s3://bench/model.bin "$WORK/dl-fetch"
    rm -rf "$WORK/dl-fetch"
    measure "s3     berth-model-fetch (no sha)" "$FETCH" --quiet s3://bench/model.bin "$WORK/dl-fetch"
    rm -rf "$WORK/dl-fetch"
    measure "s3     aws s3 cp (awscli $("$AWS" --version 2>&1 | cut -d' ' -f1 | cut -d/ -f2))" \
        "$AWS" s3 cp --only-show-errors s3://bench/model.bin "$WORK/dl-aws.bin"
    rm -f "$WORK/dl-aws.bin"
else
    echo "S3: skipped (no MinIO binary at $MINIO_BIN; see crates/model-fetch/README.md)" >&2
fi

echo
printf '%-44s %10s %14s\n' "download of ${SIZE_MIB} MiB over loopback" "MiB/s" "peak RSS MiB"
for r in "${RESULTS[@]}"; do echo "$r"; done
echo "(berth-model-fetch fsyncs the file before renaming it into place; curl and aws s3 cp do not."
echo " Peak RSS is the kernel's ru_maxrss of each process. Loopback, one shared 2-core machine: expect noise.)"
