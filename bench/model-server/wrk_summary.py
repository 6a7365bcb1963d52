#!/usr/bin/env python3
"""Reads wrk's --latency output on stdin and prints one line: "req/s p50_ms p99_ms errors requests".

Usage: wrk ... --latency ... | wrk_summary.py [RPS_DECIMALS [MS_DECIMALS]]   (default 0 and 3)

Errors are the non-2xx/3xx responses plus every socket error (connect, read, write, timeout),
so a broken run reads as errors, not as a slow run. Shared by run.sh, binary.sh and auth.sh.
"""

import re
import sys


def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def main():
    rps_decimals = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    ms_decimals = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    text = sys.stdin.read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    total = int(re.search(r"(\d+) requests in", text).group(1))
    p50 = pct.get("50", float("nan"))
    p99 = pct.get("99", float("nan"))
    print(f"{rps:.{rps_decimals}f} {p50:.{ms_decimals}f} {p99:.{ms_decimals}f} {errors} {total}")


if __name__ == "__main__":
    main()
