# A JupyterLab client for the real-node notebook test, run in a pod of the notebook's namespace
# from Berth's Jupyter image (python3, requests, websocket-client). It speaks to the notebook as
# JupyterLab does: REST with the _xsrf cookie, and the kernel's websocket channels (Jupyter's
# JSON kernel protocol, https://jupyter-client.readthedocs.io/en/latest/messaging.html).
#
#   python3 -c "$CLIENT" BASE_URL MODE
#     write  in a new kernel: write ~/state.txt and `pip install --user` the tabulate wheel the
#            image carries (no index); prints `RESULT {...}`
#     check  in a new kernel: read ~/state.txt and import tabulate from HOME; prints `RESULT {...}`
#     busy   in a new kernel: start `time.sleep(SECONDS)` and leave it computing
import glob
import json
import sys
import time
import uuid

import requests
import websocket

base, mode = sys.argv[1], sys.argv[2]
session = requests.Session()
for attempt in range(30):
    try:
        session.get(base + "lab", timeout=5).raise_for_status()
        break
    except requests.RequestException as e:
        print(f"waiting for JupyterLab: {e}", flush=True)
        time.sleep(1)
xsrf = session.cookies.get("_xsrf")
headers = {"X-XSRFToken": xsrf}
kernel = session.post(base + "api/kernels", json={"name": "python3"}, headers=headers, timeout=60)
kernel.raise_for_status()
kernel_id = kernel.json()["id"]
cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
ws = websocket.create_connection(
    base.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4()}",
    header=[f"Cookie: {cookie}"],
    timeout=120,
)


def execute(code, wait=True):
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out = []
    while True:
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            out.append(f"ERROR {content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == ("busy" if not wait else "idle"):
            return "".join(out)


WRITE = """
import os, subprocess, sys, glob
with open(os.path.expanduser("~/state.txt"), "w") as f:
    f.write("kept across stops")
wheel = glob.glob("/usr/local/share/berth/wheels/tabulate-*.whl")[0]
r = subprocess.run([sys.executable, "-m", "pip", "install", "--user", "--no-index",
                    "--disable-pip-version-check", wheel], capture_output=True, text=True)
print("pip", r.returncode, r.stderr[-300:].replace(chr(10), " "))
"""
CHECK = """
import os, importlib
print("state", open(os.path.expanduser("~/state.txt")).read())
import tabulate
print("tabulate", tabulate.__file__)
"""

if mode == "write":
    out = execute(WRITE)
elif mode == "check":
    out = execute(CHECK)
elif mode == "busy":
    out = execute(f"import time; time.sleep({int(sys.argv[3])})", wait=False)
else:
    sys.exit(f"unknown mode {mode}")
if mode != "busy":
    session.delete(base + f"api/kernels/{kernel_id}", headers=headers, timeout=30)
print("RESULT " + json.dumps({"kernel": kernel_id, "out": out}), flush=True)
