"""``secretrun init`` as a store's existing user runs it: the manifest it
writes must not override what their environment already says (VAULT_ADDR,
AWS_REGION...), and ``check`` must not warn about the file init just wrote."""

from __future__ import annotations

import os
import stat
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# Every option that a store's own environment variables give, by store type:
# init must leave each one unset (a written value wins over the variable).
ENV_GIVEN = {
    "vault": {"address": "VAULT_ADDR", "namespace": "VAULT_NAMESPACE", "ca_cert": "VAULT_CACERT",
              "auth": "VAULT_TOKEN"},
    "aws-secretsmanager": {"region": "AWS_REGION", "profile": "AWS_PROFILE",
                           "endpoint_url": "AWS_ENDPOINT_URL_SECRETS_MANAGER"},
    "aws-ssm": {"region": "AWS_REGION", "profile": "AWS_PROFILE", "endpoint_url": "AWS_ENDPOINT_URL_SSM"},
    "gcp-secretmanager": {"project": "GOOGLE_CLOUD_PROJECT"},
    "azure-keyvault": {"tenant_id": "AZURE_TENANT_ID", "client_id": "AZURE_CLIENT_ID",
                       "authority_host": "AZURE_AUTHORITY_HOST"},
    "file": {"path": "CREDENTIALS_DIRECTORY"},
    "dotenv": {},
}


@pytest.mark.parametrize("store", sorted(ENV_GIVEN))
def test_init_leaves_unset_what_the_stores_environment_gives(tmp_path, secretrun, store):
    run = secretrun("init", "--provider", store)
    assert run.code == 0, run.stderr
    doc = tomllib.loads((tmp_path / "secretrun.toml").read_text())
    (provider,) = doc["providers"].values()
    assert provider["type"] == store
    written = set(provider) & set(ENV_GIVEN[store])
    assert not written, f"init wrote {written}, overriding {[ENV_GIVEN[store][k] for k in written]}"


def test_every_store_type_init_offers_is_covered():
    from secretrun.providers import BUILTIN, load

    assert {t for t in BUILTIN if load(t).scaffold} == set(ENV_GIVEN)


def test_init_writes_0600_and_check_does_not_warn_about_it(tmp_path, secretrun):
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://x\nAPI_KEY=k\n")
    os.chmod(tmp_path / ".env", 0o600)
    run = secretrun("init", "--from-dotenv", ".env")
    assert run.code == 0, run.stderr
    assert stat.S_IMODE((tmp_path / "secretrun.toml").stat().st_mode) == 0o600
    run = secretrun("check")
    assert run.code == 0, run.stdout + run.stderr
    assert "warning" not in run.stderr, run.stderr


def test_vault_user_init_then_check_uses_their_vault_addr(bao, tmp_path, secretrun):
    """A Vault user with VAULT_ADDR and VAULT_TOKEN set: init, put the secret
    at the path init wrote, check. Nothing in between edits the manifest."""
    app = tmp_path / "shop"
    app.mkdir()
    run = secretrun("init", "--provider", "vault", cwd=app)
    assert run.code == 0, run.stderr
    assert "${vault:secret/shop#DATABASE_URL}" in (app / "secretrun.toml").read_text()
    bao.server.client().secrets.kv.v2.create_or_update_secret(
        path="shop", secret={"DATABASE_URL": "postgres://shop"}, mount_point="secret")
    run = secretrun("check", cwd=app, env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root})
    assert run.code == 0, run.stdout + run.stderr
    assert "DATABASE_URL" in run.stdout and " ok" in run.stdout
    assert "warning" not in run.stderr, run.stderr
