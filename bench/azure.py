"""Azure Key Vault: 50 secrets fetched concurrently against sequentially.

    python -m bench.azure [--secrets 50] [--rounds 5] [--rtt 0.020]

The wire-level fake vault and Entra authority (``tests/servers/azure.py``)
run in their own process, each behind a ``LatencyProxy`` adding the round
trip. Each run builds a fresh provider, as one ``secretrun`` start does, and
clears the SDK's process-wide challenge cache, so every run pays the bearer
challenge, the token request and new TLS connections. Both modes go through
the resolver's real ``fetch_all``; "sequential" is the same provider with
``max_concurrency = 1``. The table shows medians over the rounds, modes
interleaved so drift hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from azure.keyvault.secrets._shared import http_challenge_cache

from bench.latency_proxy import LatencyProxy
from secretrun.providers.azure_keyvault import AzureKeyVaultProvider
from secretrun.providers.base import ProviderContext, SecretId
from secretrun.resolve import fetch_all

ROOT = Path(__file__).resolve().parent.parent


def serve(seed_path: str, rtt: float) -> None:
    """The store side, in its own process so that neither the server nor the
    proxies compete with the client for the GIL: the fake vault and authority,
    each behind a latency proxy. Prints one JSON line, serves until stdin closes."""
    from tests.servers.azure import AzureFake

    with open(seed_path) as handle:
        values = json.load(handle)
    fake = AzureFake().start()
    client_id, client_secret = "bench-client", "bench-client-secret"
    fake.add_client(client_id, client_secret)
    for name, value in values.items():
        fake.set_secret(name, value)
    vault = LatencyProxy("127.0.0.1", fake.vault_port, rtt).__enter__()
    authority = LatencyProxy("127.0.0.1", int(fake.authority_host.rsplit(":", 1)[1]), rtt).__enter__()
    try:
        print(json.dumps({"vault_port": vault.port, "authority_port": authority.port,
                          "ca_path": fake.ca_path, "tenant": fake.tenant, "client_id": client_id,
                          "client_secret": client_secret}), flush=True)
        sys.stdin.read()
    finally:
        fake.stop()
        # The proxies' loops end with the process: stopping them with
        # connections still open only makes asyncio print its complaints.
        os._exit(0)


def start_store(values: dict, rtt: float) -> tuple:
    seed = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(values, seed)
    seed.close()
    proc = subprocess.Popen([sys.executable, "-m", "bench.azure", "--serve", seed.name, "--rtt", str(rtt)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    os.unlink(seed.name)
    if not line:
        proc.kill()
        raise SystemExit("the fake Key Vault did not start")
    return proc, json.loads(line)


def stop_store(proc: subprocess.Popen) -> None:
    proc.stdin.close()   # the server exits when its stdin closes
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def one_run(info: dict, sids: list, concurrency: int) -> tuple:
    """(cold, warm) seconds: a fresh provider's first resolution of every id,
    then the same provider's second one (token cached, connections pooled)."""
    http_challenge_cache.clear()
    environ = {"AZURE_TENANT_ID": info["tenant"], "AZURE_CLIENT_ID": info["client_id"],
               "AZURE_CLIENT_SECRET": info["client_secret"],
               "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{info['authority_port']}"}
    ctx = ProviderContext("kv", "azure-keyvault", environ, ".", 10.0)
    provider = AzureKeyVaultProvider.from_config(ctx, {
        "vault_url": f"https://127.0.0.1:{info['vault_port']}", "ca_cert": info["ca_path"],
        "verify_challenge_resource": False, "disable_instance_discovery": True})
    provider.max_concurrency = concurrency
    times = []
    try:
        for _ in range(2):
            start = time.perf_counter()
            snapshot = fetch_all({"kv": provider}, sids, retries=0)
            times.append(time.perf_counter() - start)
            failed = [out for out in snapshot.values() if not hasattr(out, "value")]
            if failed:
                raise SystemExit(f"{len(failed)} fetches failed, e.g. {failed[0]}")
    finally:
        provider.close()
    return tuple(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.azure")
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rtt", type=float, default=0.020)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.rtt)
    values = {f"bench-secret-{i:03d}": f"value-{i:03d}-" + "x" * 40 for i in range(args.secrets)}
    sids = [SecretId("kv", name) for name in values]
    proc, info = start_store(values, args.rtt)
    modes = {"sequential": 1, "concurrent": AzureKeyVaultProvider.max_concurrency}
    times = {(mode, phase): [] for mode in modes for phase in ("cold", "warm")}
    try:
        one_run(info, sids[:2], 1)   # imports, server threads
        for _ in range(args.rounds):
            for mode, concurrency in modes.items():
                cold, warm = one_run(info, sids, concurrency)
                times[mode, "cold"].append(cold)
                times[mode, "warm"].append(warm)
    finally:
        stop_store(proc)
    print(f"azure-keyvault: {args.secrets} secrets, {args.rtt * 1000:.0f} ms round trip, "
          f"median of {args.rounds} rounds")
    print("cold: a fresh provider (bearer challenge, token request, new TLS connections);")
    print("warm: the same provider again (token cached, connections pooled)")
    print(f"{'phase':<6} {'mode':<12} {'in flight':>9} {'median':>9} {'best':>9} {'vs sequential':>14}")
    for phase in ("cold", "warm"):
        base = statistics.median(times["sequential", phase])
        for mode, concurrency in modes.items():
            runs = times[mode, phase]
            median = statistics.median(runs)
            print(f"{phase:<6} {mode:<12} {concurrency:>9} {median * 1000:>7.0f}ms {min(runs) * 1000:>7.0f}ms "
                  f"{base / median:>13.1f}x")


if __name__ == "__main__":
    main()
