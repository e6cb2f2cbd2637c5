"""Load: 1,000 references across four stores (OpenBao, AWS Secrets Manager
on moto, the gRPC Secret Manager, the HTTPS Key Vault fake), every store
behind a 20 ms round trip, resolved by secretrun against a sequential loop
of the same providers' ``fetch`` in the same run.

    python -m bench.load [--per-store 250] [--rtt 0.020] [--runs 3]

Each measurement runs in a fresh worker process (``--worker``), so its peak
RSS (``ru_maxrss``) is its own; both modes import the SDKs before the clock
starts. The stores run in this process (GCP) or in processes of their own
(OpenBao, moto, Azure), and the latency proxies in another
(``bench.azure --proxies``), so only the client runs in the worker.

Every value holds the test canary; the workers print counts and timings
only, and the run checks that no output of it holds the canary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CANARY = "canary-7f3a9c1e-d0n7-l34k-m3"     # tests/conftest.py's
PROJECT = "load-proj"


# --- the worker: one measurement in a process of its own -------------------------------


def worker(mode: str, manifest: str, expected: int) -> int:
    from secretrun.manifest import load
    from secretrun.providers import load as load_provider
    from secretrun.providers.base import ProviderContext, render, select_field
    from secretrun.template import refs

    loaded = load(manifest)
    for cfg in loaded.providers.values():
        load_provider(cfg.type)                 # imports the SDK module, outside the timing
    import azure.keyvault.secrets  # noqa: F401 - the SDKs themselves, for both modes alike
    import boto3  # noqa: F401
    import google.cloud.secretmanager  # noqa: F401
    import hvac  # noqa: F401

    started = time.perf_counter()
    if mode == "secretrun":
        import secretrun

        env = secretrun.resolve(manifest, environ=os.environ)
        count = len(env)
    else:
        # The baseline: the same providers, one fetch after another.
        providers = {}
        for name, cfg in loaded.providers.items():
            ctx = ProviderContext(name, cfg.type, dict(os.environ), loaded.base_dir, loaded.settings.timeout)
            providers[name] = load_provider(cfg.type).from_config(ctx, dict(cfg.options))
        count = 0
        for var in loaded.env.values():
            for ref in refs(var.template):
                secret = providers[ref.provider].fetch(ref.secret_id)
                value = select_field(secret.value, ref.field, ref.text) if ref.field else secret.value
                count += bool(render(value))
        for provider in providers.values():
            provider.close()
    took = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": took, "rss_mib": rss, "count": count}))
    return 0 if count == expected else 1


# --- the stores and the network --------------------------------------------------------------


def spawn_json(argv, env=None):
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    line = proc.stdout.readline()
    if not line:
        stop(proc)
        raise SystemExit(f"{argv[0]} did not start")
    return proc, json.loads(line)


def stop(proc) -> None:
    try:
        proc.stdin.close()
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-store", type=int, default=250)
    parser.add_argument("--rtt", type=float, default=0.020)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], args.worker[1], int(args.worker[2]))

    import boto3

    from tests.aws_fixtures import MotoServer
    from tests.servers.gcp import SecretManagerServer
    from tests.vault_server import BaoServer, put_kv2

    n = args.per_store
    outputs = []
    with tempfile.TemporaryDirectory() as tmp, BaoServer(Path(tmp) / "bao") as bao, \
            MotoServer(Path(tmp)) as moto, SecretManagerServer() as gcp:
        tmpdir = Path(tmp)
        root = bao.client()
        sm = boto3.client("secretsmanager", endpoint_url=moto.url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        for i in range(n):
            put_kv2(root, f"load/{i}", {"value": f"{CANARY}-vault-{i}"})
            sm.create_secret(Name=f"load/{i}", SecretString=json.dumps({"value": f"{CANARY}-aws-{i}"}))
            gcp.put(PROJECT, f"load-{i}", f"{CANARY}-gcp-{i}")
        seed = tmpdir / "azure.json"
        seed.write_text(json.dumps({f"load-{i}": f"{CANARY}-azure-{i}" for i in range(n)}))
        azure, info = spawn_json(["tests.servers.azure", "--secrets", str(seed)])
        try:
            upstream = [bao.port, moto.port, gcp.port, info["vault_port"],
                        int(info["authority_host"].rsplit(":", 1)[1])]
            net, ports = spawn_json(["bench.azure", "--proxies", ",".join(map(str, upstream)), "--rtt", str(args.rtt)])
            try:
                manifest = tmpdir / "load.toml"
                lines = ["version = 1", "[settings]", 'timeout = "10s"',
                         "[providers.vault]", 'type = "vault"', f'address = "http://127.0.0.1:{ports[0]}"',
                         "[providers.aws]", 'type = "aws-secretsmanager"', 'region = "us-east-1"',
                         f'endpoint_url = "http://127.0.0.1:{ports[1]}"',
                         "[providers.gcp]", 'type = "gcp-secretmanager"', f'project = "{PROJECT}"',
                         f'endpoint = "127.0.0.1:{ports[2]}"', "insecure = true",
                         "[providers.kv]", 'type = "azure-keyvault"', f'vault_url = "https://127.0.0.1:{ports[3]}"',
                         f'ca_cert = "{info["ca_path"]}"', "verify_challenge_resource = false",
                         "disable_instance_discovery = true", "[env]"]
                for i in range(n):
                    lines += [f'VAULT_{i} = "${{vault:secret/load/{i}#value}}"',
                              f'AWS_{i} = "${{aws:load/{i}#value}}"',
                              f'GCP_{i} = "${{gcp:load-{i}}}"', f'AZURE_{i} = "${{kv:load-{i}}}"']
                manifest.write_text("\n".join(lines) + "\n")
                env = {"PATH": os.environ["PATH"], "HOME": str(tmpdir), "PYTHONPATH": str(ROOT),
                       "VAULT_TOKEN": bao.token, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmpdir / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmpdir / "none"),
                       "AZURE_TENANT_ID": info["tenant"], "AZURE_CLIENT_ID": info["client_id"],
                       "AZURE_CLIENT_SECRET": info["client_secret"],
                       "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{ports[4]}"}
                total = 4 * n

                def measure(mode):
                    proc = subprocess.run([sys.executable, "-m", "bench.load", "--worker", mode, str(manifest),
                                           str(total)], cwd=ROOT, env=env, capture_output=True, text=True,
                                          timeout=900)
                    outputs.extend([proc.stdout, proc.stderr])
                    if proc.returncode != 0:
                        raise SystemExit(f"{mode} worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
                    return json.loads(proc.stdout)

                ours = [measure("secretrun") for _ in range(args.runs)]
                base = measure("sequential")
            finally:
                stop(net)
        finally:
            stop(azure)

    leaked = sum(CANARY in text for text in outputs)
    t_ours = statistics.median(r["seconds"] for r in ours)
    m_ours = max(r["rss_mib"] for r in ours)
    print(f"load: {total} references, {n} in each of 4 stores, {args.rtt * 1000:g} ms added round trip")
    print(f"{'':>22}  {'wall':>8}  {'peak RSS':>9}")
    print(f"{'sequential fetch loop':>22}  {base['seconds']:>7.2f}s  {base['rss_mib']:>6.1f} MiB")
    print(f"{'secretrun.resolve()':>22}  {t_ours:>7.2f}s  {m_ours:>6.1f} MiB   (median of {args.runs}: "
          + ", ".join(f"{r['seconds']:.2f}s" for r in ours) + ")")
    print(f"speed-up: {base['seconds'] / t_ours:.1f}x; memory: {m_ours / base['rss_mib']:.2f}x the baseline's")
    print(f"values leaked into output: {leaked}")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
