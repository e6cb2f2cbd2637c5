"""AWS: 100 secrets resolved through a 20 ms round trip, against a plain
sequential loop of single reads in the same run, with the API calls each made.

    python -m bench.aws [--secrets 100] [--rtt 0.020] [--runs 3]

A moto server on 127.0.0.1 stands in for the store, behind
``bench.latency_proxy`` (real stores are a network hop away). Calls are
counted from moto's own request log. Rows:

- the baseline: one ``GetSecretValue`` after another, one warm boto3 client;
- secretrun's resolver (``fetch_all``) with a warm provider: ``BatchGetSecretValue``,
  20 ids a call, calls in parallel;
- the same when a policy denies the batch call (the per-secret fallback);
- ``secretrun.resolve()`` of a 100-variable manifest, cold: provider and
  client built inside the timing;
- the same for SSM: a ``GetParameter`` loop against ``GetParameters``, 10 a call.

Target (issue): at most 5 calls for the 100 secrets, at least 10x the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency_proxy import LatencyProxy  # noqa: E402
from tests.aws_fixtures import MotoServer  # noqa: E402

REGION = "us-east-1"


def measure(moto: MotoServer, runs: int, call) -> tuple:
    """Median seconds of ``call()`` over ``runs`` runs, and the API calls of one run."""
    times = []
    counts: Counter = Counter()
    for i in range(runs):
        if i == 0:
            moto.start_recording()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if i == 0:
            moto.stop_recording()
            counts.update(moto.calls())
    return statistics.median(times), counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", type=int, default=100)
    parser.add_argument("--rtt", type=float, default=0.020)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.secrets

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true",
                      AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)

    import logging

    import boto3

    import secretrun

    # The latency proxy's loop is stopped with connections still open; asyncio
    # would log each one as an error at exit.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    api_resolve = secretrun.resolve
    from secretrun.providers.aws_secretsmanager import SecretsManagerProvider
    from secretrun.providers.aws_ssm import SsmProvider
    from secretrun.providers.base import ProviderContext, SecretId
    from secretrun.resolver import fetch_all

    with tempfile.TemporaryDirectory() as tmp, MotoServer(Path(tmp)) as moto, \
            LatencyProxy("127.0.0.1", moto.port, rtt=args.rtt) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        admin = dict(endpoint_url=moto.url, region_name=REGION, aws_access_key_id="bench",
                     aws_secret_access_key="bench")
        sm, ssm, iam = (boto3.client(s, **admin) for s in ("secretsmanager", "ssm", "iam"))
        for i in range(n):
            sm.create_secret(Name=f"bench/secret-{i:03}", SecretString=json.dumps({"k": "v" * 32, "i": i}))
            ssm.put_parameter(Name=f"/bench/param-{i:03}", Value="v" * 32, Type="SecureString")
        names = [f"bench/secret-{i:03}" for i in range(n)]
        pnames = [f"/bench/param-{i:03}" for i in range(n)]
        env = {"AWS_ENDPOINT_URL": url, "AWS_REGION": REGION}
        rows = []

        loop_client = boto3.client("secretsmanager", endpoint_url=url, region_name=REGION)
        loop_client.list_secrets(MaxResults=1)   # warm: connection pool, credentials
        rows.append(("GetSecretValue loop (baseline)",
                     *measure(moto, args.runs, lambda: [loop_client.get_secret_value(SecretId=x) for x in names])))

        provider = SecretsManagerProvider.from_config(ProviderContext("aws", "aws-secretsmanager", env), {})
        provider.aws.client()
        sids = [SecretId("aws", x) for x in names]
        rows.append(("secretrun, BatchGetSecretValue",
                     *measure(moto, args.runs, lambda: _ok(fetch_all({"aws": provider}, sids)))))

        iam.create_user(UserName="nobatch")
        iam.put_user_policy(UserName="nobatch", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
                                          {"Effect": "Deny", "Action": "secretsmanager:BatchGetSecretValue",
                                           "Resource": "*"}]}))
        key = iam.create_access_key(UserName="nobatch")["AccessKey"]
        os.environ.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
        denied = SecretsManagerProvider.from_config(ProviderContext("aws", "aws-secretsmanager", env), {})
        denied.aws.client()
        moto.enforce_iam(True)
        try:
            rows.append(("secretrun, batch denied (fallback)",
                         *measure(moto, args.runs, lambda: _ok(fetch_all({"aws": denied}, sids)))))
        finally:
            moto.enforce_iam(False)
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")

        manifest = Path(tmp) / "secretrun.toml"
        manifest.write_text('version = 1\n[providers.aws]\ntype = "aws-secretsmanager"\n[env]\n' + "".join(
            f'S{i:03} = "${{aws:{x}#k}}"\n' for i, x in enumerate(names)))
        rows.append(("secretrun.resolve(), cold",
                     *measure(moto, args.runs, lambda: api_resolve(str(manifest), environ=env))))

        ssm_loop = boto3.client("ssm", endpoint_url=url, region_name=REGION)
        ssm_loop.describe_parameters(MaxResults=1)
        rows.append(("GetParameter loop (SSM baseline)", *measure(
            moto, args.runs, lambda: [ssm_loop.get_parameter(Name=x, WithDecryption=True) for x in pnames])))
        params = SsmProvider.from_config(ProviderContext("ssm", "aws-ssm", env), {})
        params.aws.client()
        psids = [SecretId("ssm", x) for x in pnames]
        rows.append(("secretrun, GetParameters (SSM)",
                     *measure(moto, args.runs, lambda: _ok(fetch_all({"ssm": params}, psids)))))

    base = {"sm": rows[0][1], "ssm": rows[4][1]}
    print(f"AWS: {n} secrets through a {args.rtt * 1000:.0f} ms round trip (moto on 127.0.0.1), "
          f"median of {args.runs} runs, {os.cpu_count()} cores")
    print(f"{'case':38} {'API calls':>10} {'time':>9} {'vs loop':>8}")
    for i, (name, seconds, counts) in enumerate(rows):
        ref = base["ssm"] if i >= 4 else base["sm"]
        calls = sum(counts.values())
        detail = ", ".join(f"{op.split('.')[-1]} {c}" for op, c in sorted(counts.items()))
        print(f"{name:38} {calls:>10} {seconds:8.3f}s {ref / seconds:7.1f}x   ({detail})")


def _ok(snapshot) -> None:
    bad = [s for s, out in snapshot.items() if isinstance(out, Exception)]
    if bad:
        raise SystemExit(f"{len(bad)} secrets failed, e.g. {snapshot[bad[0]]}")


if __name__ == "__main__":
    main()
