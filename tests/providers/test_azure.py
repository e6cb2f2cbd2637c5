"""``azure-keyvault``: the real ``SecretClient`` and real azure-identity
credentials (client secret, certificate, workload identity) against the
wire-level Key Vault and Entra fake in ``tests/servers/azure.py``, first
through the provider, then through the ``secretrun`` command."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import trustme
from azure.keyvault.secrets._shared import http_challenge_cache

from secretrun.errors import Denied, InvalidSecret, NotFound, ProviderConfigError, ProviderError, Throttled, Unavailable
from secretrun.providers.azure_keyvault import AzureKeyVaultProvider
from secretrun.providers.base import ProviderContext, SecretId
from tests.conftest import CANARY, assert_no_canary, free_port
from tests.servers.azure import azure, azure_fake  # noqa: F401 - fixtures

READER, READER_SECRET = "11111111-aaaa-4bbb-8ccc-000000000001", "reader-client-secret"
WRITER, WRITER_SECRET = "11111111-aaaa-4bbb-8ccc-000000000002", "writer-client-secret"
NOBODY, NOBODY_SECRET = "11111111-aaaa-4bbb-8ccc-000000000003", "nobody-client-secret"
CONFIG = {"user": "app", "port": 5432, "tls": {"mode": "verify-full"}, "password": CANARY}


@pytest.fixture(scope="session")
def kv(azure_fake):
    """Identities and secrets shared by the tests (which never change these)."""
    azure_fake.add_client(READER, READER_SECRET)
    azure_fake.add_client(WRITER, WRITER_SECRET, permissions=("get", "set", "list"))
    azure_fake.add_client(NOBODY, NOBODY_SECRET, permissions=())
    versions = {
        "db-old": azure_fake.set_secret("db-password", "old-password"),
        "db-new": azure_fake.set_secret("db-password", CANARY),
        "config": azure_fake.set_secret("app-config", json.dumps(CONFIG), content_type="application/json"),
        "canary": azure_fake.set_secret("canary", CANARY),
    }
    azure_fake.set_secret("not-json", "plain text")
    azure_fake.set_secret("json-list", "[1, 2]")
    azure_fake.set_secret("disabled", CANARY, enabled=False)
    versions["rotated-old"] = azure_fake.set_secret("rotated", "first")
    azure_fake.set_enabled("rotated", False, versions["rotated-old"])
    versions["rotated-new"] = azure_fake.set_secret("rotated", "second")
    return versions


def sp_env(fake, client=READER, secret=READER_SECRET, **extra):
    env = {"AZURE_TENANT_ID": fake.tenant, "AZURE_CLIENT_ID": client, "AZURE_CLIENT_SECRET": secret,
           "AZURE_AUTHORITY_HOST": fake.authority_host}
    env.update(extra)
    return env


@pytest.fixture
def make(azure, kv, tmp_path):
    """Build a provider against the fake: ``make(environ=..., timeout=..., **options)``;
    an option given as None is left out."""
    built = []

    def build(environ=None, timeout=5.0, **options):
        opts = {"vault_url": azure.vault_url, "ca_cert": azure.ca_path,
                "verify_challenge_resource": False, "disable_instance_discovery": True}
        opts.update(options)
        opts = {k: v for k, v in opts.items() if v is not None}
        ctx = ProviderContext("kv", "azure-keyvault", sp_env(azure) if environ is None else environ,
                              str(tmp_path), timeout)
        provider = AzureKeyVaultProvider.from_config(ctx, opts)
        built.append(provider)
        return provider

    yield build
    for provider in built:
        provider.close()


def sid(path, version=None, tree=False):
    return SecretId("kv", path, version, tree)


def refused(call, kind):
    """Run ``call``, expect ``kind``; the message must not hold a value."""
    with pytest.raises(kind) as info:
        call()
    assert_no_canary(str(info.value), repr(info.value))
    return str(info.value)


# --- reading ---------------------------------------------------------------


def test_latest_and_pinned_versions(make, kv):
    provider = make()
    latest = provider.fetch(sid("db-password"))
    assert (latest.value, latest.version) == (CANARY, kv["db-new"])
    pinned = provider.fetch(sid("db-password", kv["db-old"]))
    assert (pinned.value, pinned.version) == ("old-password", kv["db-old"])
    assert_no_canary(repr(latest))


def test_bearer_challenge_then_one_token_for_many_reads(make, azure, kv):
    http_challenge_cache.clear()   # process-wide in the SDK: start from a vault it has never seen
    provider = make()
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: provider.fetch(sid("db-password")).value, range(24)))
    assert values == [CANARY] * 24
    assert azure.count("GET", "/secrets/db-password", 401) == 1   # one challenge, by the first request alone
    assert azure.tokens_issued == 1
    assert azure.count("GET", "/secrets/db-password", 200) == 24


def test_import_and_fields_of_a_json_secret(make, kv):
    provider = make()
    tree = provider.fetch(sid("app-config", tree=True))
    assert dict(tree.value) == CONFIG and tree.version == kv["config"]
    # ``#key`` is the core's: fetch returns the JSON text, select_field walks it.
    from secretrun.providers.base import select_field
    text = provider.fetch(sid("app-config")).value
    assert select_field(text, "tls.mode", "app-config") == "verify-full"
    assert "not JSON" in refused(lambda: provider.fetch(sid("not-json", tree=True)), InvalidSecret)
    assert "not an object" in refused(lambda: provider.fetch(sid("json-list", tree=True)), InvalidSecret)


def test_missing_secret_and_missing_version(make):
    provider = make()
    message = refused(lambda: provider.fetch(sid("no-such-secret")), NotFound)
    assert "no-such-secret" in message and provider.vault_url in message
    refused(lambda: provider.fetch(sid("db-password", "0" * 32)), NotFound)


def test_disabled_secret_is_its_own_reason(make, kv):
    provider = make()
    assert "disabled" in refused(lambda: provider.fetch(sid("disabled")), InvalidSecret)
    assert "disabled" in refused(lambda: provider.fetch(sid("rotated", kv["rotated-old"])), InvalidSecret)
    assert provider.fetch(sid("rotated")).value == "second"


def test_names_and_versions_checked_before_any_request(make, azure):
    provider = make()
    for bad in ("a_b", "a/b", "", "x" * 128, "secret name", "../keys/k"):
        message = refused(lambda: provider.fetch(sid(bad)), ProviderConfigError)
        assert "not a Key Vault secret name" in message
    assert "version" in refused(lambda: provider.fetch(sid("db-password", "../x")), ProviderConfigError)
    assert azure.requests == []


# --- refusals and outages ----------------------------------------------------


def test_no_permission_is_denied(make, azure):
    provider = make(environ=sp_env(azure, NOBODY, NOBODY_SECRET))
    assert "secrets/get permission" in refused(lambda: provider.fetch(sid("canary")), Denied)


def test_failed_sign_in_is_denied_and_quotes_no_secret(make, azure):
    bad = make(environ=sp_env(azure, READER, CANARY))   # a wrong client secret that is the canary
    assert "AADSTS7000215" in refused(lambda: bad.fetch(sid("db-password")), Denied)
    unknown = make(environ=sp_env(azure, "22222222-aaaa-4bbb-8ccc-000000000009", "x"))
    assert "AADSTS700016" in refused(lambda: unknown.fetch(sid("db-password")), Denied)


def test_rejected_token_is_denied(make, azure):
    provider = make()
    provider.fetch(sid("canary"))
    azure.expire_tokens()   # the vault now rejects the token the credential still caches
    assert "HTTP 401" in refused(lambda: provider.fetch(sid("canary")), Denied)


@pytest.mark.parametrize("status, retry_after", [(429, 7), (500, None), (503, 0)])
def test_throttling_and_server_errors_are_unavailable_and_not_retried_by_the_sdk(make, azure, status, retry_after):
    provider = make()
    provider.fetch(sid("canary"))   # signed in; the fault hits the read itself
    azure.reset()
    azure.fail(status, name="canary", retry_after=retry_after)
    with pytest.raises(Unavailable) as info:
        provider.fetch(sid("canary"))
    assert f"HTTP {status}" in str(info.value) and info.value.retry_after == retry_after
    assert isinstance(info.value, Throttled) is (status == 429)   # a watching secretrun slows down
    assert azure.count("GET", "/secrets/canary") == 1   # the resolver retries, not the SDK
    assert provider.fetch(sid("canary")).value == CANARY


def test_unreachable_vault_slow_vault_and_untrusted_certificate(make, azure):
    closed = f"https://127.0.0.1:{free_port()}"
    assert "connection refused" in refused(lambda: make(vault_url=closed).fetch(sid("canary")), Unavailable)
    provider = make(timeout=0.5)
    provider.fetch(sid("canary"))
    azure.delay = 1.0
    assert "timed out" in refused(lambda: provider.fetch(sid("canary")), Unavailable)
    azure.delay = 0.0
    http_challenge_cache.clear()
    untrusted = make(ca_cert=None)
    assert "TLS certificate not trusted" in refused(lambda: untrusted.fetch(sid("canary")), Unavailable)


def test_authority_down_or_failing_is_unavailable(make, azure):
    down = make(environ=sp_env(azure, AZURE_AUTHORITY_HOST=f"https://127.0.0.1:{free_port()}"))
    assert "sign-in authority" in refused(lambda: down.fetch(sid("canary")), Unavailable)
    azure.authority_fault = 503
    assert "HTTP 503" in refused(lambda: make().fetch(sid("canary")), Unavailable)


def test_challenge_for_another_domain_is_refused_by_default(make):
    provider = make(verify_challenge_resource=None)   # the default: verify
    assert "verify_challenge_resource" in refused(lambda: provider.fetch(sid("canary")), Denied)


# --- credentials -------------------------------------------------------------


def test_default_credential_takes_the_environment_service_principal(make, azure):
    provider = make(credential=None)
    assert provider.fetch(sid("canary")).value == CANARY
    assert provider.consumed_env() == ("AZURE_CLIENT_SECRET",)


def test_options_override_the_environment(make, azure):
    env = sp_env(azure, "not-this-client", READER_SECRET, AZURE_TENANT_ID="not-this-tenant")
    provider = make(environ=env, credential="environment", tenant_id=azure.tenant, client_id=READER,
                    authority_host=azure.authority_host)
    assert provider.fetch(sid("canary")).value == CANARY


def test_certificate_credential(make, azure, tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("secretrun-test-app", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "app.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(pem))
    client = "33333333-aaaa-4bbb-8ccc-000000000001"
    azure.add_client(client, certificate_pem=leaf.cert_chain_pems[0].bytes())
    env = {"AZURE_TENANT_ID": azure.tenant, "AZURE_CLIENT_ID": client,
           "AZURE_CLIENT_CERTIFICATE_PATH": str(pem), "AZURE_AUTHORITY_HOST": azure.authority_host}
    provider = make(environ=env)
    assert provider.fetch(sid("canary")).value == CANARY
    assert provider.consumed_env() == ()


def test_workload_identity(make, azure, tmp_path):
    client, token = "44444444-aaaa-4bbb-8ccc-000000000001", "federated-service-account-token"
    azure.add_client(client, federated_token=token)
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    env = {"AZURE_TENANT_ID": azure.tenant, "AZURE_CLIENT_ID": client,
           "AZURE_FEDERATED_TOKEN_FILE": str(token_file), "AZURE_AUTHORITY_HOST": azure.authority_host}
    for kind in (None, "workload-identity"):   # found by the default chain, or asked for
        assert make(environ=env, credential=kind).fetch(sid("canary")).value == CANARY


def test_missing_credential_settings_are_all_reported(make):
    with pytest.raises(ProviderConfigError) as info:
        make(environ={}, credential="environment")
    message = str(info.value)
    assert "AZURE_TENANT_ID" in message and "AZURE_CLIENT_ID" in message and "AZURE_CLIENT_SECRET" in message
    with pytest.raises(ProviderConfigError, match="AZURE_FEDERATED_TOKEN_FILE"):
        make(environ={}, credential="workload-identity")


# --- options -------------------------------------------------------------------


@pytest.mark.parametrize("options, expected", [
    ({"vault_url": None}, "set 'vault_url'"),
    ({"vault": "myvault"}, "not both"),
    ({"vault_url": "http://127.0.0.1:1"}, "https://"),
    ({"vault_url": "https://x.vault.azure.net/secrets"}, "without a path"),
    ({"vault_url": None, "vault": "a--b"}, "not a Key Vault name"),
    ({"credential": "password"}, "'credential' must be one of"),
    ({"ca_cert": "missing.pem"}, "'ca_cert': no file"),
    ({"verify_challenge_resource": "no"}, "true or false"),
    ({"api_version": "1999-01-01"}, "not supported"),
    ({"authority_host": "http://login.example"}, "https://"),
    ({"region": "westeurope"}, "unknown option 'region'"),
])
def test_option_errors(make, options, expected):
    with pytest.raises(ProviderConfigError, match=expected):
        make(**options)


def test_vault_name_gives_the_public_cloud_url(make):
    provider = make(vault_url=None, vault="My-Vault-01")
    assert provider.describe() == "https://my-vault-01.vault.azure.net"


# --- change detection and writes ------------------------------------------------


def test_probe_follows_the_latest_version(make, azure, kv):
    writer = make(environ=sp_env(azure, WRITER, WRITER_SECRET))
    reader = make()
    assert reader.probe(sid("db-password")).version == kv["db-new"]
    azure.reset()
    assert reader.probe(sid("db-password", kv["db-old"])) == kv["db-old"]
    assert azure.requests == []   # a pinned version never changes: no request
    new = writer.write(sid("probe-me"), CANARY)
    assert reader.probe(sid("probe-me")).version == new
    newer = writer.write(sid("probe-me"), {"k": CANARY})
    assert newer != new and reader.probe(sid("probe-me")).version == newer
    assert json.loads(reader.fetch(sid("probe-me")).value) == {"k": CANARY}


def test_write_needs_set_permission_and_an_unpinned_name(make, azure):
    reader = make()
    assert "secrets/set permission" in refused(lambda: reader.write(sid("w"), "v"), Denied)
    refused(lambda: reader.write(sid("w", "a" * 32), "v"), ProviderConfigError)


def test_no_sdk_exception_escapes(make, azure):
    provider = make()
    provider.fetch(sid("canary"))
    for status in (400, 409, 418):
        azure.fail(status, name="canary")
        refused(lambda: provider.fetch(sid("canary")), ProviderError)


# --- the command -------------------------------------------------------------------


MANIFEST = """
    version = 1
    [settings]
    timeout = "5s"
    [providers.kv]
    type = "azure-keyvault"
    vault_url = "{url}"
    ca_cert = "{ca}"
    verify_challenge_resource = false
    disable_instance_discovery = true
"""


def write_manifest(manifest, azure, env_lines, imports=""):
    return manifest(MANIFEST.format(url=azure.vault_url, ca=azure.ca_path) + "[env]\n" + env_lines + imports)


def test_cli_versions_fields_imports_and_consumed_secret(azure, kv, manifest, secretrun):
    path = write_manifest(manifest, azure, f"""
DB_PASSWORD = "${{kv:db-password}}"
DB_OLD = "${{kv:db-password?version={kv['db-old']}}}"
DB_USER = "${{kv:app-config#user}}"
TLS_MODE = "${{kv:app-config#tls.mode}}"
""", imports="""
[[import]]
from = "${kv:app-config}"
prefix = "APP_"
normalize = true
""")
    run = secretrun("-m", str(path), child=True, env=sp_env(azure))
    assert run.code == 0, run
    env = run.child_env
    assert (env["DB_PASSWORD"], env["DB_OLD"], env["DB_USER"], env["TLS_MODE"]) == (
        CANARY, "old-password", "app", "verify-full")
    assert (env["APP_USER"], env["APP_PORT"], env["APP_PASSWORD"]) == ("app", "5432", CANARY)
    assert json.loads(env["APP_TLS"]) == {"mode": "verify-full"}
    assert "AZURE_CLIENT_SECRET" not in env and env["AZURE_CLIENT_ID"] == READER
    assert_no_canary(run.stdout, run.stderr)

    debug = secretrun("--log-level", "debug", "-m", str(path), child=True, env=sp_env(azure))
    assert debug.code == 0, debug
    assert_no_canary(debug.stdout, debug.stderr)

    check = secretrun("check", "-m", str(path), "--format", "json", env=sp_env(azure))
    assert check.code == 0, check
    assert json.loads(check.stdout)["ok"] is True
    assert_no_canary(check.stdout, check.stderr)


@pytest.mark.parametrize("ref, env_changes, code, words", [
    ("${kv:no-such-secret}", {}, 1, "not found"),
    ("${kv:disabled}", {}, 1, "disabled"),
    ("${kv:canary#nope}", {}, 1, "not JSON"),
    ("${kv:canary}", {"AZURE_CLIENT_ID": NOBODY, "AZURE_CLIENT_SECRET": NOBODY_SECRET}, 77, "permission"),
    ("${kv:canary}", {"AZURE_CLIENT_SECRET": CANARY}, 77, "AADSTS7000215"),
    ("${kv:bad_name}", {}, 78, "not a Key Vault secret name"),
])
def test_cli_exit_codes(azure, kv, manifest, secretrun, ref, env_changes, code, words):
    path = write_manifest(manifest, azure, f'VALUE = "{ref}"\nOTHER = "${{kv:canary}}"\n')
    run = secretrun("-m", str(path), child=True, env={**sp_env(azure), **env_changes})
    assert run.code == code, run
    assert words in run.stderr and "VALUE" in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_cli_retries_a_throttled_vault_then_gives_up_with_69(azure, kv, manifest, secretrun):
    path = write_manifest(manifest, azure, 'VALUE = "${kv:canary}"\n')
    azure.fail(429, name="canary", times=2, retry_after=0)
    run = secretrun("-m", str(path), child=True, env=sp_env(azure))
    assert run.code == 0 and run.child_env["VALUE"] == CANARY, run
    azure.fail(503, name="canary", times=100)
    run = secretrun("-m", str(path), child=True, env=sp_env(azure))
    assert run.code == 69 and "HTTP 503" in run.stderr, run
    assert_no_canary(run.stdout, run.stderr)


def test_cli_unreachable_vault_is_69(azure, kv, manifest, secretrun):
    path = manifest(MANIFEST.format(url=f"https://127.0.0.1:{free_port()}", ca=azure.ca_path)
                    + '[env]\nVALUE = "${kv:canary}"\n')
    run = secretrun("-m", str(path), child=True, env=sp_env(azure))
    assert run.code == 69 and "connection refused" in run.stderr, run


def test_session_refresh_reads_each_secret_once(azure, kv, manifest, make):
    from secretrun.manifest import load
    from secretrun.resolver import Session

    writer = make(environ=sp_env(azure, WRITER, WRITER_SECRET))
    writer.write(sid("rotating"), "v1")
    path = write_manifest(manifest, azure, 'A = "${kv:rotating}"\nB = "${kv:canary}"\n')
    loaded = load(str(path))
    session = Session(loaded, sp_env(azure), watch=True)
    try:
        assert session.resolve().env["A"] == "v1"
        azure.reset()
        assert session.refresh().env["A"] == "v1"
        assert azure.count("GET", "/secrets/") == 2   # one probe each, no refetch
        writer.write(sid("rotating"), "v2")
        azure.reset()
        rendered = session.refresh()
        assert (rendered.env["A"], rendered.env["B"]) == ("v2", CANARY)
        # the probe is the read: one GET each, even for the secret that moved
        assert azure.count("GET", "/secrets/rotating") == 1 and azure.count("GET", "/secrets/canary") == 1
    finally:
        session.close()


@pytest.mark.parametrize("environ, expected", [
    ({}, {}),
    ({"HTTPS_PROXY": "http://proxy:3128"}, {"https": "http://proxy:3128"}),
    ({"https_proxy": "http://lower:3128", "HTTPS_PROXY": "http://upper:3128"}, {"https": "http://lower:3128"}),
    ({"ALL_PROXY": "http://all:3128"}, {"https": "http://all:3128"}),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.org,.vault.azure.net"}, {}),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "my.vault.azure.net:443"}, {}),
    ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}, {}),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "azure.com"}, {"https": "http://p:1"}),
])
def test_proxy_settings_come_from_secretrun_environment(environ, expected):
    from secretrun.providers.azure_keyvault import _proxies

    assert _proxies(environ, "https://my.vault.azure.net:443") == expected
    if "NO_PROXY" not in environ:
        assert _proxies({**environ, "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3") == {}


@pytest.mark.parametrize("kind", ["managed-identity", "azure-cli", "default"])
def test_platform_credentials_are_built_without_consuming_anything(make, kind):
    provider = make(environ={}, credential=kind, client_id="55555555-aaaa-4bbb-8ccc-000000000001")
    assert provider.consumed_env() == ()


def test_azure_cli_credential_without_the_cli_is_denied_with_the_reason(make):
    import shutil

    if shutil.which("az"):
        pytest.skip("the Azure CLI is installed here")
    provider = make(environ={"PATH": "/nonexistent"}, credential="azure-cli")
    assert "Azure CLI" in refused(lambda: provider.fetch(sid("canary")), Denied)
