"""GCP Secret Manager: 50 secrets through a 20 ms round trip, concurrent
against sequential, in one run.

    python -m bench.gcp [--secrets 50] [--rtt 0.020] [--runs 5]

The store is ``tests.servers.gcp.SecretManagerServer`` (real gRPC, the real
client library) behind ``bench.latency_proxy``, both in a process of their
own: a real store and the network are not in ours, and sharing our GIL with
the client's threads would slow the store and the proxy, not secretrun. Every row builds a new
provider, so each pays for its own gRPC channel (TCP and HTTP/2 set-up through
the proxy). Rows, medians of ``--runs``:

- the baseline: ``provider.fetch`` for one secret after the other;
- secretrun's resolver (``fetch_all``): the same fetches from its thread
  pool, at most ``max_concurrency`` in flight over the one channel;
- ``secretrun.resolve()`` of a 50-variable manifest: manifest, provider and
  client built inside the timing, as at a container's start.

Target (issue): the resolver at least 8x the sequential loop.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROJECT = "bench-proj"

# The store process: fills the store, prints the proxy's port, answers each
# line on stdin with the access and connection counts, stops at end of input.
SERVER = """
import logging, sys
from bench.latency_proxy import LatencyProxy
from tests.servers.gcp import SecretManagerServer
logging.getLogger("asyncio").setLevel(logging.CRITICAL)
n, project, rtt = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with SecretManagerServer() as server, LatencyProxy("127.0.0.1", server.port, rtt=rtt) as proxy:
    for i in range(n):
        server.put(project, f"secret-{i:03}", f"value-{i:03}-" + "x" * 32)
    print(proxy.port, flush=True)
    for line in sys.stdin:
        print(server.calls["AccessSecretVersion"], proxy.connections, flush=True)
"""


@contextlib.contextmanager
def store_process(n: int, rtt: float):
    """The store and its proxy in a child process; yields (the proxy's port,
    a function giving the access and connection counts so far)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its stderr only when it fails to start: at exit, asyncio complains of
    # the connections the proxy's loop still held.
    errors = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(n), PROJECT, str(rtt)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            proc.wait(10)
            errors.seek(0)
            raise SystemExit(f"the store did not start:\n{errors.read()}")
        port = int(line)

        def counts() -> tuple:
            proc.stdin.write("count\n")
            proc.stdin.flush()
            accesses, connections = proc.stdout.readline().split()
            return int(accesses), int(connections)

        yield port, counts
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        errors.close()


def median_time(runs: int, call) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--rtt", type=float, default=0.020)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n = args.secrets

    import secretrun
    from secretrun.providers.base import ProviderContext, SecretId
    from secretrun.providers.gcp_secretmanager import GcpSecretManagerProvider
    from secretrun.resolver import fetch_all

    with store_process(n, args.rtt) as (port, counts), tempfile.TemporaryDirectory() as tmp:
        endpoint = f"127.0.0.1:{port}"
        options = {"project": PROJECT, "endpoint": endpoint, "insecure": True}
        sids = [SecretId("gcp", f"secret-{i:03}") for i in range(n)]

        def provider() -> GcpSecretManagerProvider:
            return GcpSecretManagerProvider.from_config(ProviderContext("gcp", "gcp-secretmanager"), options)

        def sequential() -> None:
            p = provider()
            try:
                for sid in sids:
                    p.fetch(sid)
            finally:
                p.close()

        def concurrent() -> None:
            p = provider()
            try:
                snapshot = fetch_all({"gcp": p}, sids, retries=0)
            finally:
                p.close()
            failed = [sid for sid, out in snapshot.items() if not hasattr(out, "value")]
            if failed:
                raise SystemExit(f"{len(failed)} fetches failed: {snapshot[failed[0]]}")

        manifest = Path(tmp) / "secretrun.toml"
        manifest.write_text(
            f'version = 1\n[providers.gcp]\ntype = "gcp-secretmanager"\nproject = "{PROJECT}"\n'
            f'endpoint = "{endpoint}"\ninsecure = true\n[env]\n'
            + "".join(f'VAR_{i:03} = "${{gcp:secret-{i:03}}}"\n' for i in range(n)))

        def end_to_end() -> None:
            env = secretrun.resolve(str(manifest), environ={})
            if len(env) != n:
                raise SystemExit(f"resolve gave {len(env)} variables, not {n}")

        concurrent()  # warm-up: imports, the server's thread pool
        calls_before, connections_before = counts()
        rows = [("sequential fetch loop (baseline)", median_time(args.runs, sequential)),
                (f"secretrun fetch_all ({GcpSecretManagerProvider.max_concurrency} in flight)",
                 median_time(args.runs, concurrent)),
                ("secretrun.resolve(), manifest to env", median_time(args.runs, end_to_end))]
        calls, connections = counts()
        calls, connections = calls - calls_before, connections - connections_before

    base = rows[0][1]
    print(f"gcp-secretmanager: {n} secrets, {args.rtt * 1000:.0f} ms round trip, median of {args.runs} runs")
    print(f"{'mode':<36} {'time':>9} {'per secret':>11} {'speed-up':>9}")
    for label, seconds in rows:
        print(f"{label:<36} {seconds * 1000:>7.0f}ms {seconds / n * 1000:>9.1f}ms {base / seconds:>8.1f}x")
    runs = 3 * args.runs
    print(f"AccessSecretVersion calls: {calls / runs:.0f} a run; TCP connections: {connections / runs:.1f} a run")


if __name__ == "__main__":
    main()
