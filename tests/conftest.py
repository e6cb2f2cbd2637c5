"""Shared fixtures: a canary secret, a manifest factory, and a runner for the
real ``secretrun`` command (a subprocess, as users run it)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A value that must never appear in anything secretrun prints.
CANARY = "canary-7f3a9c1e-d0n7-l34k-m3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_canary(*texts, canary: str = CANARY) -> None:
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        assert canary not in (text or ""), "a secret value leaked into secretrun's output"


class Run:
    """The outcome of one ``secretrun`` invocation, with what the child saw."""

    def __init__(self, proc: subprocess.CompletedProcess, env_file: Path) -> None:
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self._env_file = env_file

    @property
    def child_env(self) -> dict:
        return json.loads(self._env_file.read_text())

    def __repr__(self) -> str:
        return f"Run(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def secrets_dir(tmp_path):
    """A directory for the ``file`` provider, holding ``secret`` = CANARY."""
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "secret").write_text(CANARY)
    return d


@pytest.fixture
def manifest(tmp_path):
    """Write a manifest (dedented) into a fresh directory and return its path."""

    def write(text: str, name: str = "secretrun.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


DUMP_ENV = [sys.executable, "-c",
            "import json,os,sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"]


@pytest.fixture
def secretrun(tmp_path):
    """Run the real command: ``secretrun(*args, env=..., child=True)``.

    With ``child=True`` the command after ``--`` is a child that writes its
    environment to a file, read back as ``run.child_env``.
    """

    def run(*args, env=None, child=False, cwd=None, input=None, timeout=60) -> Run:
        env_file = tmp_path / "child-env.json"
        argv = [sys.executable, "-m", "secretrun", *args]
        if child:
            argv += ["--", *DUMP_ENV, str(env_file)]
        # PYTHONPATH: the checkout under test, whatever is installed.
        full_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8",
                    "PYTHONPATH": str(ROOT)}
        full_env.update(env or {})
        proc = subprocess.run(argv, cwd=cwd or tmp_path, env=full_env, capture_output=True,
                              text=True, input=input, timeout=timeout)
        return Run(proc, env_file)

    return run


@pytest.fixture(scope="session")
def bao(tmp_path_factory):
    """One real OpenBao dev server for the session, configured by
    ``tests.vault_server.configure`` (KV v1/v2, AppRole, JWT, Kubernetes auth
    with a local TokenReview, RabbitMQ leases)."""
    from types import SimpleNamespace

    from tests.vault_server import BaoServer, FakeRabbitMQ, FakeTokenReview, Signer, configure

    base = tmp_path_factory.mktemp("bao")
    signer = Signer()
    audit = base / "audit.log"
    with FakeTokenReview() as review, FakeRabbitMQ() as rabbit, BaoServer(base / "server", audit_log=audit) as server:
        creds = configure(server, signer, review, rabbit)
        yield SimpleNamespace(server=server, url=server.url, root=server.token, signer=signer, review=review,
                              rabbit=rabbit, audit=audit, secret_id=creds["secret_id"], dir=base)
