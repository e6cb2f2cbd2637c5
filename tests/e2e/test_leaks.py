"""The leak matrix: the canary stored in every kind of store, driven through
every command and failure path; it must never appear in what secretrun
prints, logs or writes, except where the user asked for the value (the
child's environment, ``env --reveal``).

Watch-mode restarts, outages and output masking are covered the same way in
tests/process/test_watch.py and tests/process/test_supervise.py (every test there checks the
canary); the store-specific error paths in each store's own module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, NamedTuple

import pytest

from tests.conftest import CANARY, ROOT, assert_no_canary
from tests.servers.azure import azure, azure_fake  # noqa: F401 - fixtures
from tests.servers.gcp import gcp_server, gcp_store  # noqa: F401 - fixtures

STORES = ["env", "dotenv", "file", "vault", "aws", "gcp", "azure"]
JSON_DOC = json.dumps({"pw": CANARY, "port": 5432, "deep": {"pw": CANARY}})


class Store(NamedTuple):
    block: str               # the [providers.s] table
    env: Dict[str, str]      # secretrun's environment
    plain: str               # a reference to the canary
    doc: str                 # a reference to a JSON secret holding the canary
    missing: str             # a reference to nothing


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    from tests.aws_fixtures import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto-leaks")).start()
    yield server
    server.stop()


def _store(kind: str, request, tmp_path) -> Store:
    if kind == "env":
        return Store('[providers.s]\ntype = "env"\nprefix = "LEAK_"',
                     {"LEAK_PLAIN": CANARY, "LEAK_DOC": JSON_DOC}, "PLAIN", "DOC", "NOPE")
    if kind == "dotenv":
        env_file = tmp_path / "store.env"
        env_file.write_text(f"PLAIN={CANARY}\nDOC='{JSON_DOC}'\n")
        os.chmod(env_file, 0o600)
        return Store(f'[providers.s]\ntype = "dotenv"\npath = "{env_file}"', {}, "PLAIN", "DOC", "NOPE")
    if kind == "file":
        d = tmp_path / "files"
        d.mkdir()
        (d / "plain").write_text(CANARY + "\n")
        (d / "doc").write_text(JSON_DOC)
        return Store(f'[providers.s]\ntype = "file"\npath = "{d}"', {}, "plain", "doc", "nope")
    if kind == "vault":
        bao = request.getfixturevalue("bao")
        client = bao.server.client()
        client.secrets.kv.v2.create_or_update_secret(path="leaks/plain", secret={"value": CANARY},
                                                     mount_point="secret")
        client.secrets.kv.v2.create_or_update_secret(path="leaks/doc", secret=json.loads(JSON_DOC),
                                                     mount_point="secret")
        return Store('[providers.s]\ntype = "vault"', {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root},
                     "secret/leaks/plain#value", "secret/leaks/doc", "secret/leaks/nope")
    if kind == "aws":
        import boto3

        moto = request.getfixturevalue("moto_server")
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        sm = boto3.client("secretsmanager", endpoint_url=moto.url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        for name, value in (("leaks/plain", CANARY), ("leaks/doc", JSON_DOC)):
            try:
                sm.create_secret(Name=name, SecretString=value)
            except sm.exceptions.ResourceExistsException:
                pass
        return Store('[providers.s]\ntype = "aws-secretsmanager"', env, "leaks/plain", "leaks/doc", "leaks/nope")
    if kind == "gcp":
        store = request.getfixturevalue("gcp_store")
        store.put("leak-proj", "plain", CANARY)
        store.put("leak-proj", "doc", JSON_DOC)
        block = (f'[providers.s]\ntype = "gcp-secretmanager"\nproject = "leak-proj"\n'
                 f'endpoint = "{store.address}"\ninsecure = true')
        return Store(block, {}, "plain", "doc", "nope")
    if kind == "azure":
        fake = request.getfixturevalue("azure")
        fake.add_client("leak-reader", "leak-reader-secret")
        fake.set_secret("plain", CANARY)
        fake.set_secret("doc", JSON_DOC)
        block = (f'[providers.s]\ntype = "azure-keyvault"\nvault_url = "{fake.vault_url}"\nca_cert = "{fake.ca_path}"\n'
                 'verify_challenge_resource = false\ndisable_instance_discovery = true')
        env = {"AZURE_TENANT_ID": fake.tenant, "AZURE_CLIENT_ID": "leak-reader",
               "AZURE_CLIENT_SECRET": "leak-reader-secret", "AZURE_AUTHORITY_HOST": fake.authority_host}
        return Store(block, env, "plain", "doc", "nope")
    raise AssertionError(kind)


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    return _store(request.param, request, tmp_path)


def write(tmp_path, store: Store, env_lines: str, settings: str = 'timeout = "5s"\nretries = 0') -> str:
    path = tmp_path / "leaks.toml"
    path.write_text(f"version = 1\n[settings]\n{settings}\n{store.block}\n[env]\n{env_lines}\n")
    return str(path)


def run(tmp_path, store: Store, *args, extra_env=None):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT),
           **store.env, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "secretrun", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def clean(*procs) -> None:
    for proc in procs:
        assert "Traceback" not in proc.stderr
        assert_no_canary(proc.stdout, proc.stderr)


def test_success_paths_print_no_value(store, tmp_path):
    m = write(tmp_path, store, f'PLAIN = "${{s:{store.plain}}}"\nPW = "${{s:{store.doc}#pw}}"\n'
                               f'DEEP = "${{s:{store.doc}#deep.pw}}"\nLITERAL = "x-{CANARY}"\n'
                               f'AS_FILE = {{ value = "${{s:{store.plain}}}", file = true }}')
    out = tmp_path / "child.json"
    child = ["--", sys.executable, "-c", "import json,os,sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))",
             str(out)]
    procs = [run(tmp_path, store, "-m", m, "--log-level", "debug", *child),
             run(tmp_path, store, "-m", m, "--log-level", "debug", "--log-format", "json", *child),
             run(tmp_path, store, "check", "-m", m),
             run(tmp_path, store, "check", "-m", m, "--format", "json", "--log-level", "debug")]
    procs += [run(tmp_path, store, "env", "-m", m, "--format", fmt) for fmt in ("dotenv", "json")]
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    clean(*procs)
    seen = json.loads(out.read_text())
    assert seen["PLAIN"] == seen["PW"] == seen["DEEP"] == CANARY  # the child, and only the child, has it


def test_failure_paths_print_no_value(store, tmp_path):
    # One manifest holds every failure: secretrun reports them all at once.
    m = write(tmp_path, store, "\n".join([
        f'VALIDATION = {{ value = "${{s:{store.plain}}}", min_length = 999, pattern = "^x$" }}',
        f'MISSING_FIELD = "${{s:{store.doc}#nope}}"',
        f'NOT_AN_OBJECT = "${{s:{store.doc}#pw.deeper}}"',
        f'NOT_JSON = "${{s:{store.plain}#field}}"',
        f'MISSING = "${{s:{store.missing}}}"',
        f'FORBIDDEN = {{ value = "${{s:{store.plain}}}", forbid = ["{CANARY}"] }}',
    ]))
    for args in (("-m", m, "--", "true"), ("-m", m, "--log-level", "debug", "--log-format", "json", "--", "true"),
                 ("check", "-m", m, "--format", "json"), ("env", "-m", m)):
        proc = run(tmp_path, store, *args)
        assert proc.returncode == 1, (args, proc.stderr)
        for name in ("VALIDATION", "MISSING_FIELD", "NOT_AN_OBJECT", "NOT_JSON", "MISSING", "FORBIDDEN"):
            assert name in proc.stdout + proc.stderr
        clean(proc)


def test_credentials_that_are_the_canary_are_not_echoed(bao, tmp_path):
    """A store refusing a credential must not quote it back."""
    store = Store('[providers.s]\ntype = "vault"', {"VAULT_ADDR": bao.url, "VAULT_TOKEN": CANARY},
                  "secret/leaks/plain#value", "secret/leaks/doc", "secret/leaks/nope")
    m = write(tmp_path, store, f'V = "${{s:{store.plain}}}"')
    for args in (("-m", m, "--log-level", "debug", "--", "true"), ("check", "-m", m, "--format", "json")):
        proc = run(tmp_path, store, *args)
        assert proc.returncode == 77
        clean(proc)


def test_an_internal_error_prints_no_value(tmp_path):
    """A bug while values are in flight: the crash handler names the type and
    the place, never the message (which here is the value itself)."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"PLAIN={CANARY}\n")
    os.chmod(env_file, 0o600)
    (tmp_path / "secretrun.toml").write_text(
        'version = 1\n[providers.s]\ntype = "dotenv"\n[env]\nV = "${s:PLAIN}"\n')
    script = ("import sys, secretrun.childenv as c, secretrun.launch as l\n"
              "real = c.build\n"
              "def broken(*a, **k):\n"
              "    result = real(*a, **k)\n"
              "    raise ValueError(result.env['V'])\n"
              "c.build = broken\n"
              "sys.exit(l.main(['--log-level', 'debug', '--', 'true']))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and "internal error: ValueError" in proc.stderr
    assert_no_canary(proc.stdout, proc.stderr)
