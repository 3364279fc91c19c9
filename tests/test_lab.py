"""`make lab` serves JupyterLab on 127.0.0.1 with the project's kernel: list the notebooks through
the REST API, start a kernel, run `import respine_nb` in it, shut everything down."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

from respine_nb import config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, path, token, method="GET", body=None):
    req = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
        return json.loads(text) if text else None


def execute(base_ws, kernel_id, token, code) -> list:
    """Send one execute_request over the kernel websocket (tornado client); return the messages."""
    import asyncio

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def go():
        url = f"{base_ws}/api/kernels/{kernel_id}/channels"
        conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
        msg_id = uuid.uuid4().hex
        await conn.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        got = []
        # the reply (shell) may overtake the output (iopub): done when both the reply and the
        # kernel's "idle" status for this request, sent after all its output, have arrived
        replied = idle = False
        while not (replied and idle):
            raw = await asyncio.wait_for(conn.read_message(), timeout=60)
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            got.append(msg)
            replied = replied or msg["msg_type"] == "execute_reply"
            idle = idle or (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle")
        conn.close()
        return got

    return asyncio.run(go())


def test_make_lab_serves_notebooks_and_the_project_kernel():
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    proc = subprocess.Popen(
        [
            "make",
            "-s",
            "-C",
            str(config.ROOT),
            "lab",
            f"LAB_ARGS=--port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                api(base, "/api/status", token)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() - t0 > 90:
                    pytest.fail("JupyterLab did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
                time.sleep(0.3)
        listing = api(base, "/api/contents", token)
        names = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        assert names == sorted(p.name for p in config.NOTEBOOKS_DIR.glob("*.ipynb")) and len(names) >= 6
        kernel = api(base, "/api/kernels", token, "POST", {"name": "python3"})
        msgs = execute(
            f"ws://127.0.0.1:{port}",
            kernel["id"],
            token,
            "import respine_nb, sys\nprint(respine_nb.__version__, sys.prefix.endswith('.venv'))",
        )
        reply = [m for m in msgs if m["msg_type"] == "execute_reply"][0]
        assert reply["content"]["status"] == "ok", reply["content"]
        out = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        assert out.strip() == "0.1.0 True"  # the project's package, in the project's environment
        api(base, f"/api/kernels/{kernel['id']}", token, "DELETE")
        api(base, "/api/shutdown", token, "POST")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
