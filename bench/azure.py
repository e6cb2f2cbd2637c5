"""Azure Key Vault: 50 secrets fetched concurrently against sequentially.

    python -m bench.azure [--secrets 50] [--rounds 5] [--rtt 0.020]

The wire-level fake vault and Entra authority (``tests/servers/azure.py``)
run in one process and the ``LatencyProxy`` in front of each (the 20 ms round
trip) in another, so that only the client runs in this one. Each run builds a fresh provider, as one ``secretrun`` start does, and
clears the SDK's process-wide challenge cache, so every run pays the bearer
challenge, the token request and new TLS connections. Both modes go through
the resolver's real ``fetch_all``; "sequential" is the same provider with
``max_concurrency = 1``. The table shows medians over the rounds, modes
interleaved so drift hits both alike; "cold" is the first resolution of a
fresh provider, "warm" the same provider's second one.
"""

from __future__ import annotations

from azure.keyvault.secrets._shared import http_challenge_cache

from bench.concurrency import _spawn, arguments, cold_then_warm, interleave, proxies, seeded_server, stop, table
from secretrun.providers.azure_keyvault import AzureKeyVaultProvider
from secretrun.providers.base import ProviderContext, SecretId


def start_store(values: dict, rtt: float) -> tuple:
    """The fake vault and authority, and the proxies in front of them: two
    processes apart from this one, as the store and the network are."""
    fake, info = seeded_server("tests.servers.azure", values)
    authority_port = int(info["authority_host"].rsplit(":", 1)[1])
    net, ports = _spawn(["bench.azure", "--proxies", f"{info['vault_port']},{authority_port}",
                         "--rtt", str(rtt)])
    info.update(vault_port=ports[0], authority_port=ports[1])
    return (net, fake), info


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
    return cold_then_warm(provider, sids)


def main() -> None:
    args = arguments("python -m bench.azure")
    if args.proxies:
        return proxies(args.proxies.split(","), args.rtt)
    values = {f"bench-secret-{i:03d}": f"value-{i:03d}-" + "x" * 40 for i in range(args.secrets)}
    sids = [SecretId("kv", name) for name in values]
    procs, info = start_store(values, args.rtt)
    modes = {"sequential": 1, "concurrent": AzureKeyVaultProvider.max_concurrency}
    try:
        one_run(info, sids[:2], 1)   # imports, server threads
        times = interleave(lambda concurrency: one_run(info, sids, concurrency), modes, args.rounds)
    finally:
        for proc in procs:
            stop(proc)
    print(f"azure-keyvault: {args.secrets} secrets, {args.rtt * 1000:.0f} ms round trip, "
          f"median of {args.rounds} rounds")
    print("cold: a fresh provider (bearer challenge, token request, new TLS connections);")
    print("warm: the same provider again (token cached, connections pooled)")
    table(modes, times)

if __name__ == "__main__":
    main()
