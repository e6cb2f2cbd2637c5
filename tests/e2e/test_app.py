"""The application layer and the bugs #14 found between modules: a host's
logging left alone, non-retryable errors tried once, one read per secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from secretrun.errors import Unavailable
from secretrun.providers.base import ProviderContext, SecretId
from secretrun.resolver import fetch_all
from tests.conftest import ROOT, assert_no_canary
from tests.vault_server import audit_paths


def _python(code: str, cwd, env=None) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_resolve_leaves_the_host_applications_logging_alone(bao, tmp_path):
    (tmp_path / "secretrun.toml").write_text(textwrap.dedent("""
        version = 1
        [providers.vault]
        type = "vault"
        [env]
        CANARY = "${vault:secret/app/canary#value}"
    """))
    out = _python("""
        import json, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="host: %(message)s")
        root = logging.getLogger()
        before = (list(root.handlers), root.level)
        import secretrun
        env = secretrun.resolve("secretrun.toml")
        logging.getLogger("host.app").info("still logging")
        print(json.dumps({"same": (list(root.handlers), root.level) == before, "got": sorted(env)}))
    """, tmp_path, {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "host: still logging" in lines
    assert json.loads(lines[-1]) == {"same": True, "got": ["CANARY"]}
    assert_no_canary(out.stdout, out.stderr)


class Counting:
    """A provider with its fetches counted (everything else is the real one)."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.provider, name)

    def fetch(self, sid):
        self.calls += 1
        return self.provider.fetch(sid)


def test_a_non_retryable_error_is_tried_once(bao):
    """TLS to bao's plain-HTTP port fails the handshake: Unavailable (69),
    but retrying cannot help, so the resolver neither sleeps nor asks again."""
    from secretrun.providers.vault import VaultProvider

    address = bao.url.replace("http://", "https://")
    ctx = ProviderContext("vault", "vault", {"VAULT_ADDR": address, "VAULT_TOKEN": bao.root}, ".", 5.0)
    vault = Counting(VaultProvider.from_config(ctx, {}))
    sleeps = []
    sid = SecretId("vault", "secret/app/db")
    got = fetch_all({"vault": vault}, [sid], retries=3, sleep=sleeps.append)
    error = got[sid]
    assert isinstance(error, Unavailable) and not error.retryable and "TLS" in str(error)
    assert (vault.calls, sleeps) == (1, [])


def test_a_retryable_error_is_still_retried(bao):
    """Nothing listens on the port: connection refused is worth retrying."""
    from secretrun.providers.vault import VaultProvider
    from tests.conftest import free_port

    ctx = ProviderContext("vault", "vault", {"VAULT_ADDR": f"http://127.0.0.1:{free_port()}",
                                             "VAULT_TOKEN": bao.root}, ".", 5.0)
    vault = Counting(VaultProvider.from_config(ctx, {}))
    sleeps = []
    sid = SecretId("vault", "secret/app/db")
    got = fetch_all({"vault": vault}, [sid], retries=2, sleep=sleeps.append)
    assert isinstance(got[sid], Unavailable) and got[sid].retryable
    assert vault.calls == 3 and len(sleeps) == 2


def test_an_import_and_env_fields_of_one_secret_read_it_once(bao, manifest, secretrun):
    manifest("""
        version = 1
        [providers.vault]
        type = "vault"
        [[import]]
        from = "${vault:secret/app/config}"
        prefix = "CFG_"
        [env]
        LOG = "${vault:secret/app/config#LOG_LEVEL}"
        FEATURE = "${vault:secret/app/config#FEATURE_X}"
    """)
    before = len(audit_paths(bao.audit))
    run = secretrun(env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root}, child=True)
    assert run.code == 0, run.stderr
    assert run.child_env["LOG"] == "debug" and run.child_env["CFG_FEATURE_X"] == "on"
    reads = [p for p in audit_paths(bao.audit)[before:] if p == "secret/data/app/config"]
    assert len(reads) == 1, reads


def test_the_lease_book_renews_and_revokes_a_real_vault_lease(bao, manifest, monkeypatch):
    """RabbitMQ credentials from OpenBao: the session's lease book renews the
    lease past half its duration and revokes it at the end."""
    from secretrun import resolver
    from secretrun.manifest import load
    from secretrun.resolver import Session

    path = manifest("""
        version = 1
        [providers.vault]
        type = "vault"
        [env]
        MQ_USER = "${vault:rabbitmq/creds/app#username}"
    """)
    loaded = load(str(path))
    session = Session(loaded, {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root})
    try:
        session.resolve()
        before = len(audit_paths(bao.audit))
        real = resolver.time.time
        monkeypatch.setattr(resolver.time, "time", lambda: real() + 90)   # past half of 120 s
        session.keepalive()
        session.revoke_leases()
        monkeypatch.undo()
        paths = audit_paths(bao.audit)[before:]
        assert paths.count("sys/leases/renew") == 1 and paths.count("sys/leases/revoke") == 1, paths
    finally:
        session.close()
