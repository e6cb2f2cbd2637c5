"""Requests lost per rotation, with and without ``listen``, in one run.

    python -m bench.listen [--rotations 10] [--servers gunicorn,node] [--store file|bao]

A real server (Flask under ``gunicorn -w 2``, and Node's http module) runs
under ``secretrun --watch``; a client sends ``GET /`` every 10 ms on a new
connection; the secret is rotated ``--rotations`` times (in a file, or in a
local OpenBao dev server with ``--store bao``), each rotation waiting until
the new value is served and the old command is gone.

- **before**: the command binds its own port (``gunicorn -b``, Node
  ``listen(PORT)``): a rotation stops it, then starts the new one.
- **after**: ``listen = ["tcp://127.0.0.1:PORT"]``: secretrun holds the
  socket, the new command starts beside the old one and the old one is
  stopped once the new one is ready (gunicorn: ``ready = "notify"``, Node:
  ``ready = "delay:300ms"``).

Reported per server: requests sent, requests failed per rotation (mean and
max), the longest run of failures in seconds, and responses carrying an old
value after the old command was gone; the ratio is after / before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import CANARY, free_port  # noqa: E402
from tests.listen_fixtures import Client, Service, gunicorn_command, node_command, wait_serving  # noqa: E402


def manifest(provider: str, ref: str, settings: str) -> str:
    return f"""version = 1
[settings]
watch = true
poll_interval = "200ms"
kill_timeout = "10s"
{settings}
{provider}
[env]
SECRET = "{ref}"
"""


def one_run(server: str, listen: bool, rotations: int, store) -> dict:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-listen-{server}-"))
    if listen:
        ready = "notify" if server == "gunicorn" else "delay:300ms"
        settings = f'listen = ["tcp://127.0.0.1:{port}"]\nready = "{ready}"'
        command = gunicorn_command() if server == "gunicorn" else node_command()
    else:
        settings = ""
        command = gunicorn_command(port=port) if server == "gunicorn" else node_command()
    provider, ref, write, env = store(tmp)
    write(CANARY)
    service = Service(tmp, manifest(provider, ref, settings), command, env={"PORT": str(port), **env})
    try:
        wait_serving(port, CANARY, timeout=30)
        client = Client(port).start()
        time.sleep(0.5)
        marks = []
        for i in range(1, rotations + 1):
            value = f"{CANARY}-{i}"
            marks.append(time.monotonic())
            write(value)
            service.wait_log("restarted the command", i, timeout=60)
            wait_serving(port, value, timeout=60)
            gone = service.wait_log("the previous command", i, timeout=60) if listen else time.monotonic()
            marks[-1] = (marks[-1], gone)
            time.sleep(0.5)
        replies = client.stop()
    finally:
        service.stop()
        service.close()
    per_rotation = []
    for i, (start, _) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else float("inf")
        per_rotation.append(sum(1 for r in replies if r.body is None and start <= r.began < end))
    longest, run_start = 0.0, None
    for r in replies:
        if r.body is None:
            run_start = r.began if run_start is None else run_start
            longest = max(longest, r.ended - run_start)
        else:
            run_start = None
    order = [CANARY] + [f"{CANARY}-{i}" for i in range(1, rotations + 1)]
    stale = 0
    for r in replies:
        if r.body is not None:
            applied = sum(1 for _, gone in marks if gone <= r.began)
            stale += r.body not in order or order.index(r.body) < applied
    return {"requests": len(replies), "failed": sum(per_rotation), "mean": statistics.mean(per_rotation),
            "max": max(per_rotation), "longest": longest, "stale": stale}


def file_store(tmp: Path):
    secrets = tmp / "secrets"
    secrets.mkdir()

    def write(value: str) -> None:
        (secrets / "secret.tmp").write_text(value)
        os.replace(secrets / "secret.tmp", secrets / "secret")

    return f'[providers.files]\ntype = "file"\npath = "{secrets}"', "${files:secret}", write, {}


def bao_store_factory():
    from tests.vault_server import BaoServer, put_kv2

    server = BaoServer(Path(tempfile.mkdtemp(prefix="bench-listen-bao-"))).start()
    client = server.client()
    counter = [0]

    def store(tmp: Path):
        counter[0] += 1
        path = f"bench/listen-{counter[0]}"
        provider = f'[providers.vault]\ntype = "vault"\naddress = "{server.url}"'
        return (provider, f"${{vault:secret/{path}#value}}",
                lambda value: put_kv2(client, path, {"value": value}), {"VAULT_TOKEN": server.token})

    return store, server


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rotations", type=int, default=10)
    ap.add_argument("--servers", default="gunicorn,node")
    ap.add_argument("--store", choices=("file", "bao"), default="file")
    args = ap.parse_args()
    server_proc = None
    store = file_store
    if args.store == "bao":
        store, server_proc = bao_store_factory()
    print(f"{args.rotations} rotations per run, a request every 10 ms, store: {args.store}")
    print("| server | | requests | failed | failed per rotation (mean / max) | longest failing run | "
          "old value after the old command was gone |")
    print("|---|---|---|---|---|---|---|")
    try:
        for server in args.servers.split(","):
            before = one_run(server, False, args.rotations, store)
            after = one_run(server, True, args.rotations, store)
            for label, r in (("before (stop, then start)", before), ("after (listen, overlap)", after)):
                print(f"| {server} | {label} | {r['requests']} | {r['failed']} | {r['mean']:.1f} / {r['max']} | "
                      f"{r['longest']:.2f} s | {r['stale']} |")
            ratio = after["mean"] / before["mean"] if before["mean"] else float("nan")
            print(f"| {server} | ratio after / before | | | {ratio:.3f} | | |")
    finally:
        if server_proc is not None:
            server_proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
