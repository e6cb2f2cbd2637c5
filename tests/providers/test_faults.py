"""Stores that misbehave, through ``tests/faults.FaultProxy``: slow answers,
5xx, throttling, reset connections and answers that stop half way.

At start, every case must end with exit 69 and a message that names the
store and what happened, within a bound derived from the manifest's
``timeout`` and ``retries`` (a generous one: this is about never hanging,
not about speed). While watching, the child keeps running through a fault
and the store's recovery, and a rotation after that still restarts it.

The stores are the real test servers (OpenBao, moto, the gRPC Secret
Manager, the HTTPS Key Vault fake); only the proxy in front of them lies.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import grpc
import pytest

from secretrun.resolver import BACKOFF_BASE, BACKOFF_CAP
from tests.aws_fixtures import MotoServer
from tests.conftest import CANARY, assert_no_canary
from tests.faults import FaultProxy
from tests.servers.azure import azure, azure_fake  # noqa: F401 - fixtures
from tests.servers.gcp import gcp_server, gcp_store  # noqa: F401 - fixtures
from tests.watch_fixtures import Watched, manifest_text

TIMEOUT = 0.5      # settings.timeout in every manifest here
RETRIES = 1        # settings.retries
SETTINGS = f'timeout = "{int(TIMEOUT * 1000)}ms"\nretries = {RETRIES}\n'


def bound(attempts_per_call: int = 1, login_calls: int = 1) -> float:
    """How long a start against a faulty store may take, at most: every
    attempt waits out its timeout (an SDK that retries inside a call makes
    ``attempts_per_call`` of them, a sign-in adds calls), plus the largest
    backoffs, plus a generous allowance for starting Python and importing
    an SDK on a busy two-core machine."""
    backoff = sum(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** a) for a in range(RETRIES))
    return TIMEOUT * attempts_per_call * login_calls * (RETRIES + 1) + backoff + 20.0


def run_faults(secretrun, write, cases, env, attempts_per_call=1, login_calls=1):
    """Run the command once per fault (concurrently: each case mostly waits
    on its timeouts) and check exit code, message, time and canary."""
    results = {}

    def one(case):
        name, inject, words = case
        with FaultProxy(*inject[0]) as proxy:
            inject[1](proxy)
            path = write(name, proxy)
            started = time.monotonic()
            run = secretrun("-m", str(path), child=True, env=env, timeout=120)
            return name, run, time.monotonic() - started, words, proxy

    with ThreadPoolExecutor(4) as pool:
        for name, run, took, words, _proxy in pool.map(one, cases):
            results[name] = took
            assert run.code == 69, (name, run)
            for word in words:
                assert word in run.stderr, (name, word, run.stderr)
            assert "Traceback" not in run.stderr
            assert took < bound(attempts_per_call, login_calls), (name, took)
            assert_no_canary(run.stdout, run.stderr)
    return results


# --- OpenBao --------------------------------------------------------------------------------


def test_vault_faults_at_start_end_in_69_within_the_bound(bao, manifest, secretrun):
    port = int(bao.url.rsplit(":", 1)[1])

    def write(name, proxy):
        return manifest(f"""
            version = 1
            [settings]
            {SETTINGS}
            [providers.vault]
            type = "vault"
            address = "http://127.0.0.1:{proxy.port}"
            [env]
            SECRET = "${{vault:secret/app/canary#value}}"
            """, name=f"{name}.toml")

    up = (port,)
    cases = [
        ("slow", (up, lambda p: p.slow(3 * TIMEOUT)), ["no answer within 0.5s"]),
        ("stall", (up, lambda p: p.stall()), ["no answer within 0.5s"]),
        ("reset", (up, lambda p: p.reset()), ["connection reset"]),
        ("unavailable", (up, lambda p: p.http(503)), ["HTTP 503"]),
        ("throttled", (up, lambda p: p.throttle("http", retry_after=0)), ["HTTP 429"]),
    ]
    run_faults(secretrun, write, cases, {"VAULT_TOKEN": bao.root})


# --- AWS Secrets Manager (moto) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto-faults")).start()
    try:
        boto3.client("secretsmanager", endpoint_url=server.url, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_secret(
            Name="faults/db", SecretString=json.dumps({"password": CANARY}))
        yield server
    finally:
        server.stop()


def test_aws_faults_at_start_end_in_69_within_the_bound(moto, manifest, secretrun, tmp_path):
    def write(name, proxy):
        return manifest(f"""
            version = 1
            [settings]
            {SETTINGS}
            [providers.aws]
            type = "aws-secretsmanager"
            endpoint_url = "http://127.0.0.1:{proxy.port}"
            [env]
            SECRET = "${{aws:faults/db#password}}"
            """, name=f"{name}.toml")

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    up = (moto.port,)
    cases = [
        ("slow", (up, lambda p: p.slow(3 * TIMEOUT)), ["faults/db", "timed out"]),
        ("stall", (up, lambda p: p.stall()), ["faults/db", "timed out"]),
        ("reset", (up, lambda p: p.reset()), ["faults/db", "connection was closed"]),
        ("unavailable", (up, lambda p: p.http(503)), ["faults/db", "503"]),
        ("throttled", (up, lambda p: p.throttle("aws")), ["faults/db", "throttled"]),
    ]
    # The SDK makes 2 attempts a call.
    run_faults(secretrun, write, cases, env, attempts_per_call=2)


# --- GCP Secret Manager (gRPC) ------------------------------------------------------------------


def test_gcp_faults_at_start_end_in_69_within_the_bound(gcp_store, manifest, secretrun):
    gcp_store.put("test-proj", "db", CANARY)
    port = int(gcp_store.address.rsplit(":", 1)[1])

    def write(name, proxy):
        return manifest(f"""
            version = 1
            [settings]
            {SETTINGS}
            [providers.gcp]
            type = "gcp-secretmanager"
            project = "test-proj"
            endpoint = "127.0.0.1:{proxy.port}"
            insecure = true
            [env]
            SECRET = "${{gcp:db}}"
            """, name=f"{name}.toml")

    up = (port,)
    cases = [
        ("slow", (up, lambda p: p.slow(3 * TIMEOUT)), ["within 0.5s"]),
        ("stall", (up, lambda p: p.stall()), ["within 0.5s"]),
        ("reset", (up, lambda p: p.reset()), ["cannot be reached"]),
    ]
    run_faults(secretrun, write, cases, {})
    # The server's own gRPC statuses: unavailable, and a quota (throttling).
    for code, words in ((grpc.StatusCode.UNAVAILABLE, "cannot be reached"),
                        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota")):
        gcp_store.fail("AccessSecretVersion", code, times=-1)
        with FaultProxy(port) as proxy:
            started = time.monotonic()
            run = secretrun("-m", str(write(code.name, proxy)), child=True)
        gcp_store.reset()
        gcp_store.put("test-proj", "db", CANARY)
        assert run.code == 69 and words in run.stderr, run
        assert time.monotonic() - started < bound() + 60      # quota errors wait longer (a minute's quota)
        assert_no_canary(run.stdout, run.stderr)


# --- Azure Key Vault (HTTPS) --------------------------------------------------------------------


def test_azure_faults_at_start_end_in_69_within_the_bound(azure, manifest, secretrun):
    client, secret = "11111111-aaaa-4bbb-8ccc-0000000000fa", "faults-client-secret"
    azure.add_client(client, secret)
    azure.set_secret("faults-db", CANARY)
    env = {"AZURE_TENANT_ID": azure.tenant, "AZURE_CLIENT_ID": client, "AZURE_CLIENT_SECRET": secret,
           "AZURE_AUTHORITY_HOST": azure.authority_host}

    def write(name, proxy):
        return manifest(f"""
            version = 1
            [settings]
            {SETTINGS}
            [providers.kv]
            type = "azure-keyvault"
            vault_url = "https://127.0.0.1:{proxy.port}"
            ca_cert = "{azure.ca_path}"
            verify_challenge_resource = false
            disable_instance_discovery = true
            [env]
            SECRET = "${{kv:faults-db}}"
            """, name=f"{name}.toml")

    up = (azure.vault_port,)
    cases = [
        ("slow", (up, lambda p: p.slow(3 * TIMEOUT)), ["faults-db", "timed out"]),
        ("stall", (up, lambda p: p.stall()), ["faults-db", "timed out"]),
        ("reset", (up, lambda p: p.reset()), ["faults-db", "connection reset"]),
    ]
    # The challenge request and the read are two calls, each bounded.
    run_faults(secretrun, write, cases, env, login_calls=2)
    # HTTP statuses come from the fake itself (the proxy cannot write inside TLS).
    for status, words in ((503, "503"), (429, "429")):
        azure.fail(status, name="faults-db", times=50, retry_after=0 if status == 429 else None)
        with FaultProxy(azure.vault_port) as proxy:
            started = time.monotonic()
            run = secretrun("-m", str(write(f"s{status}", proxy)), child=True, env=env)
        azure.reset()
        assert run.code == 69 and words in run.stderr and "faults-db" in run.stderr, run
        assert time.monotonic() - started < bound(login_calls=2)
        assert_no_canary(run.stdout, run.stderr)


# --- watching through a fault --------------------------------------------------------------------


def test_watching_child_keeps_running_through_faults_and_recovery(bao, tmp_path):
    from tests.vault_server import put_kv2

    NEW = CANARY + "-rotated"
    client = bao.server.client()
    put_kv2(client, "faults/watch", {"value": CANARY})
    port = int(bao.url.rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:
        provider = f'[providers.vault]\ntype = "vault"\naddress = "http://127.0.0.1:{proxy.port}"'
        text = manifest_text(tmp_path, {"poll_interval": '"100ms"', "timeout": '"300ms"', "retries": "0"},
                             env='SECRET = "${vault:secret/faults/watch#value}"', provider=provider)
        w = Watched(tmp_path, text, env={"VAULT_TOKEN": bao.root})
        try:
            (first,) = w.records.wait_starts(1, timeout=20)
            assert first["env"]["SECRET"] == CANARY
            failures = 0
            for inject in (proxy.stall, proxy.reset, lambda: proxy.http(503)):
                inject()
                failures += 1
                w.wait_log("refresh still failing" if failures > 1 else "keeps running on its last good values",
                           count=failures - 1 or 1, timeout=20)
            # Throttling is no outage: the poller slows down instead (tests/e2e/test_fleet.py).
            proxy.throttle("http")
            w.wait_log("a store is throttling the polls", timeout=20)
            proxy.heal()
            w.wait_log("the stores answer again", timeout=30)
            assert w.stderr.count("keeps running on its last good values") == 1
            assert w.alive() and len(w.records.starts()) == 1 and w.records.events(first["pid"]) == []
            # Recovered for real: a rotation now restarts the child with the new value.
            put_kv2(client, "faults/watch", {"value": NEW})
            assert w.records.wait_starts(2, timeout=20)[1]["env"]["SECRET"] == NEW
            assert_no_canary(w.stderr, w.stdout)
            assert_no_canary(w.stderr, w.stdout, canary=NEW)
        finally:
            w.close()
