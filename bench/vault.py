"""Resolve 1, 20 and 100 distinct KV v2 secrets from a local OpenBao dev
server behind a proxy that adds a 20 ms round trip, as a real store a
network hop away would.

    python -m bench.vault [--rtt 0.020] [--repeat 5]

Compared in the same run:

- ``hvac sequential``: the baseline, a plain loop of
  ``client.secrets.kv.v2.read_secret_version`` on one hvac client;
- ``hvac 8 threads``: the same reads from an 8-thread pool, for reference;
- ``secretrun``: ``secretrun.resolve()`` of a manifest with one variable per
  secret: manifest loading, the core resolver's thread pool, and the vault
  provider's mount lookup and reads.

Every run starts cold (a new client, new connections), as a container start
does. Figures are medians; ``conns`` is how many TCP connections the run
opened through the proxy.

The proxy runs in a process of its own: in this one, its event loop would
compete with the resolver's threads for the GIL, which a real network hop
does not. On a small machine the server, the proxy and the client still
share the cores, so per-request CPU shows in the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hvac

import secretrun
from tests.vault_server import BaoServer, put_kv2

SIZES = (1, 20, 100)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs bench/latency_proxy.py's LatencyProxy; prints its port, then answers
# each line on stdin with its connection count, and exits at end of input.
PROXY = """
import sys
from bench.latency_proxy import LatencyProxy
with LatencyProxy("127.0.0.1", int(sys.argv[1]), rtt=float(sys.argv[2])) as proxy:
    print(proxy.port, flush=True)
    for _ in sys.stdin:
        print(proxy.connections, flush=True)
"""


class ProxyProcess:
    """``LatencyProxy`` in a child process, stopped by its PID."""

    def __init__(self, upstream_port: int, rtt: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PROXY, str(upstream_port), str(rtt)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.DEVNULL)   # asyncio chatter about open connections at exit
        self.port = int(self.proc.stdout.readline())

    @property
    def connections(self) -> int:
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def hvac_sequential(url: str, token: str, n: int) -> None:
    client = hvac.Client(url=url, token=token)
    for i in range(n):
        client.secrets.kv.v2.read_secret_version(path=f"bench/{i}", mount_point="secret",
                                                 raise_on_deleted_version=True)
    client.adapter.close()


def hvac_pool(url: str, token: str, n: int, threads: int = 8) -> None:
    client = hvac.Client(url=url, token=token)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: client.secrets.kv.v2.read_secret_version(
            path=f"bench/{i}", mount_point="secret", raise_on_deleted_version=True), range(n)))
    client.adapter.close()


def write_manifest(directory: Path, n: int) -> Path:
    lines = ["version = 1", "", "[providers.vault]", 'type = "vault"', "", "[env]"]
    lines += [f'SECRET_{i} = "${{vault:secret/bench/{i}#value}}"' for i in range(n)]
    path = directory / f"bench-{n}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def secretrun_resolve(manifest: Path, environ: dict, n: int) -> None:
    env = secretrun.resolve(str(manifest), environ=environ)
    assert len(env) == n, len(env)


def measure(proxy: ProxyProcess, call, repeat: int):
    times, conns = [], []
    call()                                   # warm-up: imports, the server's caches
    for _ in range(repeat):
        before = proxy.connections
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        conns.append(proxy.connections - before)
    return statistics.median(times), max(conns)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt", type=float, default=0.020, help="added round trip, seconds")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        with BaoServer(tmpdir / "bao") as server:
            root = server.client()
            for i in range(max(SIZES)):
                put_kv2(root, f"bench/{i}", {"value": f"value-{i}", "user": "bench"})
            with ProxyProcess(server.port, args.rtt) as proxy:
                url = f"http://127.0.0.1:{proxy.port}"
                environ = {"VAULT_ADDR": url, "VAULT_TOKEN": server.token, "PATH": "/usr/bin:/bin"}
                rows = []
                for n in SIZES:
                    manifest = write_manifest(tmpdir, n)
                    seq = measure(proxy, lambda: hvac_sequential(url, server.token, n), args.repeat)
                    pool = measure(proxy, lambda: hvac_pool(url, server.token, n), args.repeat)
                    ours = measure(proxy, lambda: secretrun_resolve(manifest, environ, n), args.repeat)
                    rows.append((n, seq, pool, ours))

    print(f"vault: distinct KV v2 paths, {args.rtt * 1000:g} ms added round trip, median of {args.repeat}")
    print(f"{'paths':>5}  {'hvac sequential':>15}  {'hvac 8 threads':>14}  {'secretrun':>9}  {'conns':>5}  "
          f"{'vs sequential':>13}")
    for n, seq, pool, ours in rows:
        print(f"{n:>5}  {seq[0]:>14.3f}s  {pool[0]:>13.3f}s  {ours[0]:>8.3f}s  {ours[1]:>5}  "
              f"{seq[0] / ours[0]:>12.1f}x")
    one = rows[0][3][0]
    for n, _, _, ours in rows[1:]:
        print(f"secretrun: {n} paths take {ours[0] / one:.2f}x the time of 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
