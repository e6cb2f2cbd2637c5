"""Kubernetes Secrets: 50 secrets fetched concurrently against sequentially.

    python -m bench.kubernetes [--secrets 50] [--rounds 5] [--rtt 0.020]

The wire-level API server (``tests/servers/kubernetes.py``) runs in one
process and the ``LatencyProxy`` in front of it (the 20 ms round trip) in
another, so that only the client runs in this one. Each run builds a fresh
provider, as one ``secretrun`` start does (kubeconfig read, TLS context
built, new connections). Both modes go through the resolver's real
``fetch_all``; "sequential" is the same provider with ``max_concurrency = 1``.
Medians over the rounds, modes interleaved; "cold" is a fresh provider's
first resolution, "warm" its second (connections pooled).
"""

from __future__ import annotations

import json
import os
import tempfile

from bench.concurrency import _spawn, arguments, cold_then_warm, interleave, proxies, seeded_server, stop, table
from secretrun.providers.base import ProviderContext, SecretId
from secretrun.providers.kubernetes import KubernetesProvider


def start_store(values: dict, rtt: float) -> tuple:
    fake, info = seeded_server("tests.servers.kubernetes", values)
    net, ports = _spawn(["bench.kubernetes", "--proxies", str(info["port"]), "--rtt", str(rtt)])
    info["proxied"] = f"https://127.0.0.1:{ports[0]}"
    return (net, fake), info


def kubeconfig(info: dict, directory: str) -> str:
    path = os.path.join(directory, "config")
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "bench",
           "clusters": [{"name": "bench", "cluster": {"server": info["proxied"],
                                                      "certificate-authority": info["ca_path"]}}],
           "users": [{"name": "bench", "user": {"token": info["token"]}}],
           "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}]}
    with open(path, "w") as handle:
        json.dump(doc, handle)
    return path


def one_run(config: str, sids: list, concurrency: int) -> tuple:
    ctx = ProviderContext("k8s", "kubernetes", {"KUBECONFIG": config}, ".", 10.0)
    provider = KubernetesProvider.from_config(ctx, {})
    provider.max_concurrency = concurrency
    return cold_then_warm(provider, sids)


def main() -> None:
    args = arguments("python -m bench.kubernetes")
    if args.proxies:
        return proxies(args.proxies.split(","), args.rtt)
    values = {f"bench-secret-{i:03d}": {"value": f"value-{i:03d}-" + "x" * 40} for i in range(args.secrets)}
    sids = [SecretId("k8s", name) for name in values]
    procs, info = start_store(values, args.rtt)
    modes = {"sequential": 1, "concurrent": KubernetesProvider.max_concurrency}
    with tempfile.TemporaryDirectory() as directory:
        config = kubeconfig(info, directory)
        try:
            one_run(config, sids[:2], 1)   # imports, server threads
            times = interleave(lambda concurrency: one_run(config, sids, concurrency), modes, args.rounds)
        finally:
            for proc in procs:
                stop(proc)
    print(f"kubernetes: {args.secrets} secrets, {args.rtt * 1000:.0f} ms round trip, "
          f"median of {args.rounds} rounds")
    print("cold: a fresh provider (kubeconfig, TLS context, new connections); warm: the same provider again")
    table(modes, times)

if __name__ == "__main__":
    main()
