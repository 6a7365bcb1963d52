"""Floods a running berth-model-server with large inference requests and prints its peak RSS.

Used by flood.sh; run that. Sends REQUESTS requests at once (each on its own connection),
with bodies of MIN_MIB to MAX_MIB MiB (sizes drawn with a fixed seed), of one kind:
  raw       the bytes "0,0,0,..." (not JSON at all)
  mismatch  a JSON request whose FP32 data is "0,0,0,..." but whose shape is [1, 3]
  valid     a JSON request whose FP32 data is "0,0,0,..." and whose shape [N, 3] matches it
  binary    the same tensor with the binary data extension: a JSON header, then N*12 zero bytes,
            outputs asked for as binary data too
Bodies are generated while sending (the client holds none of them), and responses are read
and discarded in chunks. Prints one line: kind, requests, status counts, peak RSS (VmHWM) and
the budget, and wall time.
"""

import http.client
import json
import random
import sys
import threading
import time

CHUNK = 1 << 20


def body_parts(kind, size):
    """(content length, iterator of chunks, extra headers) for a body of about `size` bytes."""
    if kind == "binary":
        rows = max(1, size // 12)
        header = json.dumps({
            "inputs": [{"name": "x", "shape": [rows, 3], "datatype": "FP32",
                        "parameters": {"binary_data_size": rows * 12}}],
            "parameters": {"binary_data_output": True},
        }).encode()

        def binary():
            yield header
            left = rows * 12
            block = bytes(CHUNK)
            while left > 0:
                k = min(left, CHUNK)
                yield block if k == CHUNK else bytes(k)
                left -= k

        return len(header) + rows * 12, binary(), {"Inference-Header-Content-Length": str(len(header))}
    if kind == "raw":
        n = size // 2
        head, tail = b"", b"0"
    else:
        rows = max(1, size // 6)
        n = rows * 3
        shape = [1, 3] if kind == "mismatch" else [rows, 3]
        head = ('{"inputs":[{"name":"x","shape":%s,"datatype":"FP32","data":[' % json.dumps(shape)).encode()
        tail = b"0]}]}"
    # n - 1 times "0," then the tail.
    length = len(head) + 2 * (n - 1) + len(tail)

    def gen():
        yield head
        left = n - 1
        block = b"0," * (CHUNK // 2)
        while left > 0:
            k = min(left, CHUNK // 2)
            yield block if k == CHUNK // 2 else b"0," * k
            left -= k
        yield tail

    return length, gen(), {}


def one(port, path, kind, size, results, lock):
    length, chunks, headers = body_parts(kind, size)
    status = "error"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            for c in chunks:
                conn.send(c)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before the whole body was sent (429, 413): read the answer
        resp = conn.getresponse()
        status = str(resp.status)
        first = resp.read(300 if resp.status != 200 else CHUNK)
        while resp.read(CHUNK):
            pass
        conn.close()
        message = first.decode(errors="replace") if resp.status != 200 else None
    except Exception as e:  # noqa: BLE001 - every failure is counted, by its kind
        status = "error:" + type(e).__name__
        message = str(e)
    with lock:
        results[status] = results.get(status, 0) + 1
        if message is not None:
            results.setdefault("messages", {}).setdefault(status, message)


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    port, path, kind, pid, requests, min_mib, max_mib, budget = sys.argv[1:9]
    requests, min_mib, max_mib = int(requests), int(min_mib), int(max_mib)
    rng = random.Random(42)
    sizes = [rng.randint(min_mib << 20, max_mib << 20) for _ in range(requests)]
    results, lock = {}, threading.Lock()
    before = vm_hwm(pid)
    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(int(port), path, kind, s, results, lock)) for s in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    peak = vm_hwm(pid)
    messages = results.pop("messages", {})
    codes = " ".join(f"{k}:{v}" for k, v in sorted(results.items()))
    mib = 1 << 20
    print(
        f"{kind:9} requests {requests} ({min_mib}-{max_mib} MiB, {sum(sizes) / mib:.0f} MiB in all)  "
        f"status {codes}  peak RSS {peak / mib:.0f} MiB (idle {before / mib:.0f} MiB)  "
        f"budget {int(budget) / mib:.0f} MiB  wall {wall:.1f} s",
        flush=True,
    )
    for status, message in sorted(messages.items()):
        print(f"          first {status}: {message}", flush=True)


if __name__ == "__main__":
    main()
