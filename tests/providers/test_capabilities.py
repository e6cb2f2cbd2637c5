"""Providers are asked what they can do, not what type they are: a
third-party provider with ``write()`` is pushed to and rotated like Vault."""

from __future__ import annotations

import json
import re

import pytest

from secretrun.providers import load
from secretrun.providers.capabilities import capabilities, offers
from tests.conftest import CANARY, ROOT, assert_no_canary
from tests.plugin import jsonstore


@pytest.mark.parametrize("type_name,expected", [
    ("env", ()),
    ("dotenv", ()),                                    # a refresh rereads it (forget), no probe
    ("vault", ("probe", "lease", "write", "age")),
    ("aws-ssm", ("batch", "probe", "write")),          # SSM keeps no write date for a version
])
def test_built_in_capabilities(type_name, expected):
    assert capabilities(load(type_name)) == expected


def test_the_plugin_offers_write_and_age_only():
    cls = jsonstore.JsonStoreProvider
    assert capabilities(cls) == ("write", "age")
    assert offers(cls, "write") and not offers(cls, "change_source")


@pytest.fixture
def plugin_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    jsonstore.install(site)
    return {"PYTHONPATH": f"{ROOT}:{site}"}


def test_a_plugin_with_write_is_pushed_to_and_rotated(manifest, secretrun, tmp_path, plugin_env):
    manifest("""
        version = 1
        [providers.plug]
        type = "jsonstore"
        path = "store.json"
        [env]
        API_TOKEN = { value = "${plug:app/token}", min_length = 32 }
        LOG_LEVEL = "info"
    """)
    (tmp_path / ".env").write_text(f"API_TOKEN={CANARY}-0123456789abcdef\n")
    push = secretrun("push", env=plugin_env)
    assert push.code == 0, push.stderr
    assert re.search(r"API_TOKEN\s+\$\{plug:app/token\}\s+create\s+1", push.stdout), push.stdout
    run = secretrun(env=plugin_env, child=True)
    assert run.code == 0, run.stderr
    assert run.child_env["API_TOKEN"] == f"{CANARY}-0123456789abcdef"

    rotate = secretrun("rotate", "API_TOKEN", env=plugin_env)
    assert (rotate.code, rotate.stdout) == (0, "2\n"), rotate.stderr
    store = json.loads((tmp_path / "store.json").read_text())
    new = store["app/token"][1]["value"]
    assert len(new) == 32 and new != CANARY
    run = secretrun(env=plugin_env, child=True)
    assert run.child_env["API_TOKEN"] == new
    aged = secretrun("rotate", "--all-older-than", "1h", env=plugin_env)
    assert aged.code == 0 and aged.stdout == "", aged.stderr
    for out in (push, rotate, aged):
        assert_no_canary(out.stdout, out.stderr)
        assert_no_canary(out.stdout, out.stderr, canary=new)


def test_a_plugin_without_write_is_named_when_pushed(manifest, secretrun, tmp_path):
    manifest("""
        version = 1
        [providers.local]
        type = "dotenv"
        [env]
        A = "${local:A}"
    """)
    (tmp_path / ".env").write_text("A=1\n")
    run = secretrun("rotate", "A")
    assert run.code == 1 and "provider type 'dotenv' has no write()" in run.stderr


def test_init_asks_the_plugin_for_its_scaffold(secretrun, tmp_path, plugin_env):
    (tmp_path / ".env").write_text("API_TOKEN=x\n")
    (tmp_path / ".env").chmod(0o600)
    run = secretrun("init", "--from-dotenv", ".env", "--provider", "jsonstore", env=plugin_env)
    assert run.code == 0, run.stderr
    text = (tmp_path / "secretrun.toml").read_text()
    assert '[providers.plug]\ntype = "jsonstore"' in text
    assert f'API_TOKEN = "${{plug:{tmp_path.name}/api_token}}"' in text
    assert secretrun("init", "--provider", "nosuch", "-m", "x.toml").code == 2


def test_the_session_asks_capabilities_before_it_calls_a_verb(manifest, tmp_path):
    """A refresh reads a local file again through ``forget`` (not ``probe``),
    probes only a store that offers ``probe``, and keeps a login alive only
    where the store defines ``keepalive``."""
    from secretrun.manifest import load as load_manifest
    from secretrun.providers.base import Provider, Secret
    from secretrun.resolver import Session

    class Counting(Provider):
        type_name = "counting"
        calls: list = []

        def fetch(self, sid):
            self.calls.append(("fetch", sid.path))
            return Secret(sid.path, version="1")

    class Probing(Counting):
        def probe(self, sid):
            self.calls.append(("probe", sid.path))
            return "1"

    (tmp_path / ".env").write_text("A=one\n")
    path = manifest('version = 1\n[providers.local]\ntype = "dotenv"\n[providers.p]\ntype = "dotenv"\n'
                    '[providers.q]\ntype = "dotenv"\n[env]\nA = "${local:A}"\nP = "${p:x}"\nQ = "${q:y}"\n')
    loaded = load_manifest(str(path))
    session = Session(loaded, {})
    session.provider("local")
    plain, probing = Counting(session.providers["local"].ctx), Probing(session.providers["local"].ctx)
    session.providers.update(p=plain, q=probing)
    assert session.resolve().env["A"] == "one"
    assert not offers(session.providers["local"], "probe") and capabilities(plain) == ()
    (tmp_path / ".env").write_text("A=two\n")
    Counting.calls.clear()
    assert session.refresh().env["A"] == "two"                # forgotten, read again
    assert sorted(Counting.calls) == [("fetch", "x"), ("probe", "y")]
    session.keepalive()                                        # no store defines it: nothing asked
    session.close()
