"""Test servers for the AWS providers: a real moto server on a free loopback
port, and a fault proxy in front of it for what moto cannot produce
(throttling, 5xx, a KMS refusal).

Used by tests/providers/test_aws.py and by bench/aws.py. Nothing here listens on, or
talks to, anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``moto_server`` in a child process, stopped by its PID.

    The server keeps a request log (moto's recorder, written to
    ``recording``); ``calls()`` reads it back as the list of API operations
    received, so tests count what the providers sent.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = self.workdir / "moto-recording.jsonl"
        self.log = self.workdir / "moto-server.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 30.0) -> "MotoServer":
        argv = [str(MOTO_SERVER)] if MOTO_SERVER.exists() else [sys.executable, "-m", "moto.server"]
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(self.recording))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv + ["-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                self._post("/moto-api/reset")
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("moto_server did not answer in time")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _post(self, path: str, data: bytes = b"") -> bytes:
        request = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def reset(self) -> None:
        """Forget every resource (secrets, parameters, IAM users)."""
        self._post("/moto-api/reset")

    def start_recording(self) -> None:
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def stop_recording(self) -> None:
        self._post("/moto-api/recorder/stop-recording")

    def requests(self) -> List[Tuple[str, Dict[str, str], str]]:
        """The requests received since ``start_recording``, in order, as
        ``(operation, headers, body)``; operations read
        ``secretsmanager.GetSecretValue``, ``ssm.GetParameters``,
        ``query.AssumeRole`` (query-protocol services: STS, IAM)."""
        import base64

        with urllib.request.urlopen(self.url + "/moto-api/recorder/download-recording", timeout=10) as r:
            text = r.read().decode()
        out = []
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            target = headers.get("x-amz-target")
            if target:
                service, _, action = target.partition(".")
                operation = f"{'ssm' if service == 'AmazonSSM' else service}.{action}"
            else:
                params = dict(p.split("=", 1) for p in body.split("&") if "=" in p)
                operation = f"query.{params.get('Action', '?')}"
            out.append((operation, headers, body))
        return out

    def calls(self) -> List[str]:
        """The operations received since ``start_recording``, in order."""
        return [operation for operation, _, _ in self.requests()]

    def enforce_iam(self, enabled: bool) -> None:
        """Make moto check every request's signature and IAM policies (or
        stop). While on, only keys of IAM users created in moto work."""
        self._post("/moto-api/reset-auth", b"0" if enabled else b"inf")


class FaultProxy:
    """An HTTP proxy in front of moto that answers chosen operations with an
    AWS error instead of forwarding them, and counts every request.

    ``proxy.fail("GetSecretValue", 400, "ThrottlingException")``; ``status``
    500 gives a server error. ``proxy.hits`` counts requests per operation.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: Dict[str, Tuple[int, str]] = {}
        self.hits: Dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="fault-proxy",
                                        daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def fail(self, operation: str, status: int, code: str) -> None:
        self.faults[operation] = (status, code)

    def clear(self) -> None:
        self.faults.clear()
        self.hits.clear()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        operation = (handler.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        with self._lock:
            self.hits[operation] = self.hits.get(operation, 0) + 1
            fault = self.faults.get(operation)
        if fault is not None:
            status, code = fault
            payload = json.dumps({"__type": code, "message": "injected by the test proxy"}).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/x-amz-json-1.1")
            handler.send_header("x-amzn-ErrorType", code)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        upstream = HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            handler.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        finally:
            upstream.close()


def aws_test_environ(monkeypatch, home: Path) -> None:
    """Dummy credentials in the process environment (botocore's chain reads
    it), and no trace of the host's own AWS configuration."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    # No instance-metadata probing when a test removes the credentials.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
