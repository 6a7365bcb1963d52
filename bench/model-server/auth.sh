#!/usr/bin/env bash
# The cost of checking callers: berth-model-server (release) serving the `mlp` ONNX model twice,
# side by side, in three variants:
#   none         --auth none, requests without a token
#   none+token   the same server, requests carrying the bearer token (ignored): what the token's
#                bytes alone cost (wrk builds and sends, hyper parses ~700 more bytes per request)
#   oidc         --auth oidc, every request carrying the same valid RS256 bearer token (an RSA 2048
#                key made by openssl, as Keycloak signs by default; its JWKS and discovery document
#                served by python3's http.server on 127.0.0.1)
# driven by wrk 4.1.0 with the same POST body at CLIENTS connections (default 8), SECONDS_PER_RUN
# seconds per run, REPEATS rounds, the variants interleaved within each round (the order rotates).
# Prints one line per run, then the median (and range) of req/s, p50 and p99 of each, and the
# auth overhead: 1 - median(oidc req/s) / median(none req/s) (target: <= 5 %), and the check's own
# share, 1 - oidc / none+token. Because req/s on a machine shared with other work moves with the
# others' load, each run also records the server's own CPU time per request (the sum of its
# threads' /proc/PID/task/*/schedstat run time over the run, divided by the requests), which the
# others' load barely moves; the summary gives its medians and the extra CPU oidc spends per
# request. It first prints the check alone, on one thread, by examples/auth_check.rs: µs per
# request with a token already verified, and for a new token. Nothing is asserted.
#
# This is the steady state of a caller that sends the same token again and again, which is how
# clients behave until their token expires: the server verifies a token's signature once and then
# keeps its verdict for at most 60 s (see crates/model-server/src/auth/oidc.rs), so the per-request
# cost measured is the SHA-256 of the token, a cache lookup and the header parsing, not the RSA
# signature check each new token costs once.
#
#   bench/model-server/auth.sh
# Environment: SECONDS_PER_RUN (default 10), REPEATS (default 3), CLIENTS (default 8),
# OUT (raw results, default target/bench-model-server/auth-runs.tsv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
seconds=${SECONDS_PER_RUN:-10}
repeats=${REPEATS:-3}
clients=${CLIENTS:-8}
cores=$(nproc)
onnx_version=1.20.1
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work="$target/bench-model-server"
out=${OUT:-$work/auth-runs.tsv}
mkdir -p "$work"
command -v wrk >/dev/null || { echo "wrk is missing: tools/bench-tools/install.sh installs it" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is missing" >&2; exit 1; }

echo "== building berth-model-server and the auth_check example (release)" >&2
cargo build --release -p berth-model-server --bin berth-model-server --example auth_check >&2
bin="$target/release/berth-model-server"
echo "== the check alone (crates/model-server/examples/auth_check.rs)" >&2
check_alone=$("$target/release/examples/auth_check")
echo "   $check_alone" >&2

venv="$target/tmp/onnx-$onnx_version-venv"
if ! "$venv/bin/python" -c 'import onnx' 2>/dev/null; then
  echo "== installing onnx==$onnx_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "onnx==$onnx_version"
fi
"$venv/bin/python" crates/model-server/tests/make_models.py "$work/models" >&2

pids=()
stop_all() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_all EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_code() { # URL CODE LOG [CURL ARGS...]
  local url=$1 code=$2 log=$3; shift 3
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true)" = "$code" ] && return 0
    sleep 0.1
  done
  echo "no $code from $url" >&2; tail -20 "$log" >&2; exit 1
}

echo "== issuer: an RSA 2048 key, its JWKS and discovery document on 127.0.0.1" >&2
issuer_dir="$work/issuer"
rm -rf "$issuer_dir"
mkdir -p "$issuer_dir/realms/bench/.well-known"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/issuer-key.pem" 2>/dev/null
issuer_port=$(free_port)
issuer="http://127.0.0.1:$issuer_port/realms/bench"
audience=bench-models
modulus=$(openssl rsa -in "$work/issuer-key.pem" -noout -modulus | cut -d= -f2)
python3 - "$issuer" "$modulus" "$issuer_dir/realms/bench" <<'PY'
import base64, json, sys
issuer, modulus_hex, out = sys.argv[1:]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
n = bytes.fromhex(modulus_hex)
jwk = {"kid": "bench-1", "kty": "RSA", "alg": "RS256", "use": "sig", "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}
json.dump({"keys": [jwk]}, open(f"{out}/certs", "w"))
json.dump({"issuer": issuer, "jwks_uri": f"{issuer}/certs"}, open(f"{out}/.well-known/openid-configuration", "w"))
PY
(cd "$issuer_dir" && exec python3 -m http.server --bind 127.0.0.1 "$issuer_port") >"$work/issuer.log" 2>&1 &
pids+=($!)
wait_code "$issuer/.well-known/openid-configuration" 200 "$work/issuer.log"

# An RS256 token valid for an hour: header.claims signed with openssl (PKCS#1 v1.5, SHA-256).
signing_input=$(python3 - "$issuer" "$audience" <<'PY'
import base64, json, sys, time
issuer, audience = sys.argv[1:]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
header = {"alg": "RS256", "typ": "JWT", "kid": "bench-1"}
claims = {"iss": issuer, "aud": audience, "sub": "bench", "azp": "bench-client", "iat": now, "exp": now + 3600,
          "realm_access": {"roles": ["model-user"]}}
print(b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode()))
PY
)
signature=$(printf '%s' "$signing_input" | openssl dgst -sha256 -sign "$work/issuer-key.pem" -binary |
  python3 -c 'import base64, sys; print(base64.urlsafe_b64encode(sys.stdin.buffer.read()).rstrip(b"=").decode())')
token="$signing_input.$signature"

body='{"id":"bench","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1.0,2.0,3.0]}]}'
for variant in none oidc; do
  python3 - "$body" "$([ $variant = oidc ] && echo "$token")" >"$work/post-$variant.lua" <<'PY'
import json, sys
print("wrk.method = \"POST\"")
print("wrk.headers[\"Content-Type\"] = \"application/json\"")
if sys.argv[2]:
    print("wrk.headers[\"Authorization\"] = " + json.dumps("Bearer " + sys.argv[2]))
print("wrk.body = " + json.dumps(sys.argv[1]))
PY
done

declare -A url pid
# Nanoseconds the process has run on a CPU, all its threads together.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ns += $1} END {printf "%.0f\n", ns}'; }
start_server() { # NAME AUTH-ARGS...
  local name=$1; shift
  local port metrics; port=$(free_port); metrics=$(free_port)
  "$bin" --model-path "$work/models/mlp" --http-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$metrics" "$@" \
    2>"$work/auth-$name.log" &
  pids+=($!)
  pid[$name]=$!
  wait_code "http://127.0.0.1:$metrics/v2/health/ready" 200 "$work/auth-$name.log"
  url[$name]="http://127.0.0.1:$port/v2/models/mlp/infer"
}
echo "== starting berth-model-server --auth none and --auth oidc" >&2
start_server none --auth none
start_server oidc --auth oidc --oidc-issuer "$issuer" --oidc-audience "$audience" --oidc-role model-user

# The check must hold before anything is timed: no token 401, the token 200, same answer as none.
wait_code "${url[oidc]}" 401 "$work/auth-oidc.log" -X POST -H 'Content-Type: application/json' -d "$body"
want=$(curl -s -X POST -H 'Content-Type: application/json' -d "$body" "${url[none]}")
got=$(curl -s -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $token" -d "$body" "${url[oidc]}")
[ "$got" = "$want" ] || { echo "oidc answers differently: $got vs $want" >&2; tail -5 "$work/auth-oidc.log" >&2; exit 1; }
echo "== both answer $want" >&2

# One wrk run: prints "req/s p50_ms p99_ms errors requests".
run_wrk() { # URL LUA
  local threads=$(( clients < cores ? clients : cores ))
  wrk -t "$threads" -c "$clients" -d "${seconds}s" --latency -s "$2" "$1" | python3 "$here/wrk_summary.py"
}

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates/model-server bench || echo "+dirty")
echo "== $(date -u +%FT%TZ) commit $commit, $cores cores shared by the servers and wrk, $clients clients, ${seconds}s per run, $repeats rounds" >&2
printf 'round\tauth\treq_s\tp50_ms\tp99_ms\terrors\trequests\tload_1m\tcpu_us_per_req\n' >"$out"
variants=(none none+token oidc)
for r in $(seq 1 "$repeats"); do
  for i in 0 1 2; do
    a=${variants[$(( (i + r - 1) % 3 ))]}
    case $a in
      none) target_url=${url[none]} lua="$work/post-none.lua" server=${pid[none]} ;;
      none+token) target_url=${url[none]} lua="$work/post-oidc.lua" server=${pid[none]} ;;
      oidc) target_url=${url[oidc]} lua="$work/post-oidc.lua" server=${pid[oidc]} ;;
    esac
    load=$(cut -d' ' -f1 /proc/loadavg)
    before=$(cpu_ns "$server")
    figures=$(run_wrk "$target_url" "$lua")
    after=$(cpu_ns "$server")
    requests=${figures##* }
    cpu=$(python3 -c "print(f'{($after - $before) / 1000 / max($requests, 1):.2f}')")
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$a" "$(echo "$figures" | tr ' ' '\t')" "$load" "$cpu" >>"$out"
    echo "   round $r, --auth $a: $figures (req/s p50 p99 errors requests), server CPU $cpu µs/request, load $load" >&2
  done
done
metrics_port=$(grep -o 'serving metrics on http://[0-9.:]*' "$work/auth-oidc.log" | head -1 | sed 's|.*http://||')
allowed=$(curl -s "http://$metrics_port/metrics" | grep 'berth_model_auth_requests_total{result="allowed"}' || true)

python3 - "$out" "$clients" "$allowed" "$check_alone" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def cell(vals, digits):
    vals = sorted(vals)
    med = statistics.median(vals)
    return f"{med:.{digits}f}" if vals[0] == vals[-1] else f"{med:.{digits}f} ({vals[0]:.{digits}f}–{vals[-1]:.{digits}f})"
print(f"| auth | req/s at {sys.argv[2]} clients | server CPU µs/request | p50 ms | p99 ms | errors (sum) | load (1 min) |")
print("|---|---:|---:|---:|---:|---:|---:|")
med, cpu = {}, {}
for a in ["none", "none+token", "oidc"]:
    rs = [r for r in rows if r["auth"] == a]
    med[a] = statistics.median(float(r["req_s"]) for r in rs)
    cpu[a] = statistics.median(float(r["cpu_us_per_req"]) for r in rs)
    print(f"| {a} | {cell([float(r['req_s']) for r in rs], 0)} | {cell([float(r['cpu_us_per_req']) for r in rs], 2)} | "
          f"{cell([float(r['p50_ms']) for r in rs], 3)} | "
          f"{cell([float(r['p99_ms']) for r in rs], 3)} | {sum(int(r['errors']) for r in rs)} of {sum(int(r['requests']) for r in rs)} | "
          f"{cell([float(r['load_1m']) for r in rs], 1)} |")
print(f"\nauth overhead (1 - oidc/none, medians): {100 * (1 - med['oidc'] / med['none']):.1f} % (target <= 5 %)")
print(f"of which the token's bytes (1 - none+token/none): {100 * (1 - med['none+token'] / med['none']):.1f} %, "
      f"the check itself (1 - oidc/none+token): {100 * (1 - med['oidc'] / med['none+token']):.1f} %")
print(f"server CPU per request: oidc {cpu['oidc']:.2f} µs vs none {cpu['none']:.2f} µs "
      f"(+{cpu['oidc'] - cpu['none']:.2f} µs, {100 * (cpu['oidc'] / cpu['none'] - 1):.1f} %), "
      f"vs none+token {cpu['none+token']:.2f} µs (+{cpu['oidc'] - cpu['none+token']:.2f} µs)")
if sys.argv[3]:
    print(f"oidc server: {sys.argv[3].strip()}")
print(sys.argv[4])
PY
