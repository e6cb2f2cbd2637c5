"""``gcp-secretmanager`` against a wire-level Secret Manager: the real client
library over gRPC to ``tests/servers/gcp.py``, and the real ``secretrun``
command in a subprocess. Application Default Credentials are exercised for
real through a metadata server and a TLS endpoint that checks the token."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from secretrun.errors import Denied, InvalidSecret, Kind, NotFound, ProviderConfigError, ProviderError, Throttled, Unavailable
from secretrun.providers.base import ProviderContext, SecretId, select_field
from secretrun.providers.gcp_secretmanager import GcpSecretManagerProvider, crc32c
from tests.conftest import CANARY, ROOT, assert_no_canary, free_port
from tests.servers.gcp import MetadataServer, SecretManagerServer, gcp_server, gcp_store  # noqa: F401 - fixtures
from tests.servers.gcp import crc32c as bitwise_crc32c

P = "test-proj"
Code = grpc.StatusCode


def no_leak(*texts) -> None:
    """Neither the canary nor its base64 (how JSON renders protobuf bytes)."""
    assert_no_canary(*texts)
    assert_no_canary(*texts, canary=base64.b64encode(CANARY.encode()).decode())


@pytest.fixture
def gcp(gcp_store):
    """A provider factory wired to the test server; closes what it built."""
    built = []

    def make(timeout: float = 10.0, environ=None, **options):
        options = {"project": P, "endpoint": gcp_store.address, "insecure": True, **options}
        ctx = ProviderContext("gcp", "gcp-secretmanager", environ or {}, ".", timeout)
        provider = GcpSecretManagerProvider.from_config(ctx, {k: v for k, v in options.items() if v is not None})
        built.append(provider)
        return provider

    yield make
    for provider in built:
        provider.close()


def sid(path, version=None, tree=False):
    return SecretId("gcp", path, version, tree)


# --- references and versions -------------------------------------------------------


def test_latest_numbers_aliases_and_full_names(gcp, gcp_store):
    gcp_store.put(P, "db", "one")
    gcp_store.put(P, "db", "two", aliases={"stable": 1})
    provider = gcp()
    got = provider.fetch(sid("db"))
    assert (got.value, got.version) == ("two", "2")
    assert provider.fetch(sid("db", "1")).value == "one"
    assert provider.fetch(sid("db", "latest")).version == "2"
    assert provider.fetch(sid("db", "stable")) == provider.fetch(sid("db", "1"))
    assert provider.fetch(sid(f"projects/{P}/secrets/db")).version == "2"
    assert provider.fetch(sid(f"projects/{P}/secrets/db/versions/1")).value == "one"
    assert provider.fetch(sid(f"projects/{P}/secrets/db/versions/1", "1")).value == "one"
    # Another project by full name, whatever the provider's own project.
    gcp_store.put("other-proj", "db", "elsewhere")
    assert provider.fetch(sid("projects/other-proj/secrets/db")).value == "elsewhere"


def test_regional_secrets(gcp, gcp_store):
    gcp_store.put(P, "db", "regional", location="europe-west1")
    gcp_store.put(P, "db", "global")
    assert gcp(location="europe-west1").fetch(sid("db")).value == "regional"
    assert gcp().fetch(sid(f"projects/{P}/locations/europe-west1/secrets/db/versions/1")).value == "regional"
    assert gcp(location="europe-west1").fetch(sid(f"projects/{P}/secrets/db")).value == "global"


def test_project_comes_from_the_option_then_google_cloud_project(gcp, gcp_store):
    gcp_store.put("env-proj", "db", "from env")
    gcp_store.put(P, "db", "from option")
    assert gcp(project=None, environ={"GOOGLE_CLOUD_PROJECT": "env-proj"}).fetch(sid("db")).value == "from env"
    assert gcp(environ={"GOOGLE_CLOUD_PROJECT": "env-proj"}).fetch(sid("db")).value == "from option"
    no_project = gcp(project=None)
    with pytest.raises(ProviderConfigError, match="no project for secret db"):
        no_project.fetch(sid("db"))
    assert no_project.fetch(sid(f"projects/{P}/secrets/db")).value == "from option"


@pytest.mark.parametrize("path, version, message", [
    ("bad name", None, "is not a secret name"),
    ("projects/p/secrets/db/extra", None, "is not a secret name"),
    ("db/versions/2", None, "is not a secret name"),
    (f"projects/{P}/secrets/db/versions/1", "2", "names version 1 and"),
    ("db", "0", "not 'latest', a number or an alias"),
    ("db", "1.5", "not 'latest', a number or an alias"),
])
def test_malformed_references_are_refused_before_any_call(gcp, gcp_store, path, version, message):
    with pytest.raises(ProviderConfigError, match=message) as info:
        gcp().fetch(sid(path, version))
    assert info.value.kind == Kind.MANIFEST
    assert sum(gcp_store.calls.values()) == 0


def test_options_are_validated_together():
    ctx = ProviderContext("gcp", "gcp-secretmanager")
    with pytest.raises(ProviderConfigError) as info:
        GcpSecretManagerProvider.from_config(ctx, {"insecure": True, "location": "Europe West", "region": "x",
                                                   "project": 42})
    text = str(info.value)
    for part in ("'insecure' needs an 'endpoint'", "'location' must be a region", "unknown option 'region'",
                 "'project' must be a string"):
        assert part in text
    with pytest.raises(ProviderConfigError, match="host\\[:port\\]"):
        GcpSecretManagerProvider.from_config(ctx, {"endpoint": "https://example.com/v1/"})
    provider = GcpSecretManagerProvider.from_config(ctx, {"endpoint": "https://sm.example.com:443/",
                                                          "project": P})
    assert provider.endpoint == "sm.example.com:443"
    assert provider.describe() == f"Secret Manager sm.example.com:443 (project {P})"
    regional = GcpSecretManagerProvider.from_config(ctx, {"location": "me-central2"})
    assert regional.describe() == "Secret Manager secretmanager.me-central2.rep.googleapis.com"


# --- payloads ----------------------------------------------------------------------


def test_text_binary_and_json_fields(gcp, gcp_store):
    gcp_store.put(P, "text", "héllo\nworld")
    gcp_store.put(P, "blob", b"\xff\x00\xfe")
    gcp_store.put(P, "json", json.dumps({"user": "app", "password": CANARY, "tls": {"ca": "pem"}}))
    provider = gcp()
    assert provider.fetch(sid("text")).value == "héllo\nworld"
    assert provider.fetch(sid("blob")).value == b"\xff\x00\xfe"
    value = provider.fetch(sid("json")).value
    assert select_field(value, "password", "json") == CANARY
    assert select_field(value, "tls.ca", "json") == "pem"


def test_import_of_a_json_secret(gcp, gcp_store):
    gcp_store.put(P, "config", json.dumps({"A": "1", "B": CANARY}))
    gcp_store.put(P, "notjson", CANARY)
    gcp_store.put(P, "list", "[1, 2]")
    provider = gcp()
    tree = provider.fetch(sid("config", tree=True))
    assert tree.value == {"A": "1", "B": CANARY} and tree.version == "1"
    with pytest.raises(InvalidSecret, match="is not JSON") as info:
        provider.fetch(sid("notjson", tree=True))
    no_leak(str(info.value))
    with pytest.raises(InvalidSecret, match="not an object"):
        provider.fetch(sid("list", tree=True))


def test_crc32c_matches_the_standard_and_an_independent_implementation():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283                  # RFC 3720 B.4 check value
    assert crc32c(bytes(32)) == 0x8A9136AA                     # RFC 3720 B.4: 32 zero bytes
    assert crc32c(b"\xff" * 32) == 0x62A8AB43                  # RFC 3720 B.4: 32 0xff bytes
    rng = random.Random(7)
    for size in (1, 7, 64, 1000, 65536):
        data = rng.randbytes(size)
        assert crc32c(data) == bitwise_crc32c(data)


def test_a_corrupted_payload_is_refused(gcp, gcp_store):
    version = gcp_store.put(P, "db", CANARY)
    gcp_store.corrupt(version)
    with pytest.raises(InvalidSecret, match="CRC32C") as info:
        gcp().fetch(sid("db"))
    assert info.value.kind == Kind.MISSING and not info.value.retryable
    no_leak(str(info.value), repr(info.value))


def test_a_payload_without_checksum_is_accepted(gcp, gcp_store):
    gcp_store.put(P, "old", "from before checksums", checksum=False)
    assert gcp().fetch(sid("old")).value == "from before checksums"


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("code, error, words", [
    (Code.PERMISSION_DENIED, Denied, "permission denied"),
    (Code.UNAUTHENTICATED, Denied, "refused the credentials"),
    (Code.UNAVAILABLE, Unavailable, "cannot be reached"),
    (Code.RESOURCE_EXHAUSTED, Throttled, "quota"),
    (Code.DEADLINE_EXCEEDED, Unavailable, "did not answer"),
    (Code.INTERNAL, ProviderError, "(internal)"),
    (Code.INVALID_ARGUMENT, InvalidSecret, "invalid"),
])
def test_status_codes_map_to_error_classes_with_one_attempt(gcp, gcp_store, code, error, words):
    gcp_store.put(P, "db", CANARY)
    gcp_store.fail("AccessSecretVersion", code, message=f"echo {CANARY}", times=-1)
    with pytest.raises(ProviderError) as info:
        gcp().fetch(sid("db"))
    assert type(info.value) is error and words in str(info.value)
    # One request: the SDK's own retry (60 s on UNAVAILABLE/RESOURCE_EXHAUSTED)
    # is off, so the resolver's retries do not multiply.
    assert gcp_store.calls["AccessSecretVersion"] == 1
    no_leak(str(info.value), repr(info.value))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_not_found_secret_and_version(gcp, gcp_store):
    gcp_store.put(P, "db", "x")
    provider = gcp()
    with pytest.raises(NotFound, match=f"secret projects/{P}/secrets/nope does not exist or has no versions"):
        provider.fetch(sid("nope"))
    with pytest.raises(NotFound, match=f"secret projects/{P}/secrets/db has no version 7"):
        provider.fetch(sid("db", "7"))
    with pytest.raises(NotFound):
        provider.fetch(sid("db", "unknownalias"))


def test_denied_by_iam_and_a_real_deadline(gcp, gcp_store):
    gcp_store.put(P, "locked", "x")
    gcp_store.put(P, "slow", "x")
    gcp_store.deny(f"projects/{P}/secrets/locked")
    gcp_store.delay(f"projects/{P}/secrets/slow", 5)
    provider = gcp(timeout=0.3)
    with pytest.raises(Denied) as info:
        provider.fetch(sid("locked"))
    assert info.value.kind == Kind.DENIED
    with pytest.raises(Unavailable, match="within 0.3s"):
        provider.fetch(sid("slow"))


def test_disabled_and_destroyed_versions(gcp, gcp_store):
    v1 = gcp_store.put(P, "db", CANARY)
    v2 = gcp_store.put(P, "db", CANARY + "-2")
    gcp_store.set_state(v2, "DISABLED")
    provider = gcp()
    # ``latest`` is the newest version whatever its state: no silent fallback to 1.
    with pytest.raises(InvalidSecret, match="version latest.* is disabled") as info:
        provider.fetch(sid("db"))
    assert info.value.kind == Kind.MISSING
    no_leak(str(info.value))
    assert provider.fetch(sid("db", "1")).value == CANARY
    gcp_store.set_state(v1, "DESTROYED")
    with pytest.raises(InvalidSecret, match="is destroyed"):
        provider.fetch(sid("db", "1"))


def test_an_unreachable_store_is_unavailable(gcp):
    provider = gcp(endpoint=f"127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable, match="cannot be reached"):
        provider.fetch(sid("db"))


# --- change detection, concurrency, writes ------------------------------------------


def test_versions_come_from_the_access_call_never_from_metadata(gcp, gcp_store):
    gcp_store.put(P, "db", "one")
    provider = gcp()
    assert provider.fetch(sid("db")).version == "1"
    assert provider.probe(sid("db")) is None
    gcp_store.put(P, "db", "two")
    assert provider.fetch(sid("db")).version == "2"
    assert set(gcp_store.calls) == {"AccessSecretVersion"}
    # A pinned version number never changes: polling it costs nothing.
    calls = dict(gcp_store.calls)
    assert provider.probe(sid("db", version="1")) == "1" == provider.fetch(sid("db", version="1")).version
    assert gcp_store.calls["AccessSecretVersion"] == calls["AccessSecretVersion"] + 1


def test_session_refresh_sees_a_new_version(gcp_store, tmp_path):
    from secretrun.manifest import load
    from secretrun.resolver import Session

    gcp_store.put(P, "db", "one")
    path = tmp_path / "secretrun.toml"
    path.write_text(f"""version = 1
[providers.gcp]
type = "gcp-secretmanager"
project = "{P}"
endpoint = "{gcp_store.address}"
insecure = true
[env]
DB = "${{gcp:db}}"
""")
    manifest = load(str(path), None)
    session = Session(manifest, {"PATH": os.environ["PATH"]})
    try:
        first = session.resolve()
        assert first.env["DB"] == "one" and first.versions["DB"] == "1"
        assert session.refresh().env["DB"] == "one"
        gcp_store.put(P, "db", "two")
        second = session.refresh()
        assert second.env["DB"] == "two" and second.versions["DB"] == "2"
    finally:
        session.close()
    assert set(gcp_store.calls) == {"AccessSecretVersion"}


def test_concurrent_fetches_share_one_client(gcp, gcp_store):
    for n in range(50):
        gcp_store.put(P, f"s{n}", f"value-{n}")
    provider = gcp()
    with ThreadPoolExecutor(max_workers=provider.max_concurrency) as pool:
        values = list(pool.map(lambda n: provider.fetch(sid(f"s{n}")).value, range(50)))
    assert values == [f"value-{n}" for n in range(50)]
    assert len(provider._clients) == 1


def test_write_creates_the_secret_then_adds_versions(gcp, gcp_store):
    provider = gcp()
    assert provider.write(sid("new"), CANARY) == "1"
    assert provider.write(sid("new"), {"a": 1}) == "2"
    assert provider.fetch(sid("new", "1")).value == CANARY
    assert provider.fetch(sid("new")).value == '{"a":1}'
    assert gcp(location="us-east1").write(sid("new"), b"\x00regional") == "1"
    client = gcp_store.client()
    version = client.get_secret_version(name=f"projects/{P}/secrets/new/versions/1")
    assert version.client_specified_payload_checksum  # the checksum went with the data
    assert client.get_secret(name=f"projects/{P}/secrets/new").replication.automatic is not None
    with pytest.raises(InvalidSecret, match="64 KiB"):
        provider.write(sid("big"), "x" * (64 * 1024 + 1))


# --- the command, end to end ----------------------------------------------------------


def write_manifest(manifest, address: str, body: str, settings: str = 'timeout = "10s"\nretries = 1') -> None:
    manifest(f"""\
version = 1
[settings]
{settings}
[providers.gcp]
type = "gcp-secretmanager"
project = "{P}"
endpoint = "{address}"
insecure = true
{body}
""")


def test_cli_resolves_versions_keys_and_imports(gcp_store, manifest, secretrun):
    gcp_store.put(P, "db", json.dumps({"user": "app", "password": "old"}))
    gcp_store.put(P, "db", json.dumps({"user": "app", "password": CANARY}))
    gcp_store.put(P, "token", "t-1")
    gcp_store.put(P, "config", json.dumps({"MODE": "prod", "KEY": CANARY}))
    write_manifest(manifest, gcp_store.address, """
[env]
DB_USER = "${gcp:db#user}"
DB_PASSWORD = "${gcp:db#password}"
OLD_PASSWORD = "${gcp:db?version=1#password}"
TOKEN = "${gcp:projects/test-proj/secrets/token/versions/1}"
[[import]]
from = "${gcp:config}"
prefix = "APP_"
""")
    run = secretrun(child=True)
    assert run.code == 0, run
    env = run.child_env
    assert (env["DB_USER"], env["DB_PASSWORD"], env["OLD_PASSWORD"]) == ("app", CANARY, "old")
    assert (env["TOKEN"], env["APP_MODE"], env["APP_KEY"]) == ("t-1", "prod", CANARY)
    no_leak(run.stdout, run.stderr)
    # #user and #password of one secret are one access.
    assert gcp_store.calls["AccessSecretVersion"] == 4
    check = secretrun("check", "--format", "json")
    assert check.code == 0, check
    versions = {row["variable"]: row["version"] for row in json.loads(check.stdout)["variables"]}
    assert versions["DB_PASSWORD"] == "2" and versions["OLD_PASSWORD"] == "1"
    no_leak(check.stdout, check.stderr)


def test_cli_exit_codes(gcp_store, manifest, secretrun):
    gcp_store.put(P, "db", json.dumps({"password": CANARY}))
    corrupted = gcp_store.put(P, "corrupt", CANARY)
    gcp_store.corrupt(corrupted)
    gcp_store.set_state(gcp_store.put(P, "off", CANARY), "DISABLED")
    gcp_store.put(P, "locked", CANARY)
    gcp_store.deny(f"projects/{P}/secrets/locked")
    gcp_store.put(P, "down", CANARY)
    gcp_store.fail("AccessSecretVersion", Code.UNAVAILABLE, name=f"projects/{P}/secrets/down", times=-1)
    cases = {"${gcp:nope}": "missing", "${gcp:db?version=3}": "missing", "${gcp:corrupt}": "missing",
             "${gcp:off}": "missing", "${gcp:db#nofield}": "missing", "${gcp:locked}": "denied",
             "${gcp:down}": "unavailable", "${gcp:bad/name}": "manifest"}
    write_manifest(manifest, gcp_store.address,
                   "[env]\n" + "".join(f'V{i} = "{ref}"\n' for i, ref in enumerate(cases)))
    check = secretrun("check", "--format", "json")
    assert check.code == 78, check  # every problem reported; the code follows 78 > 77 > 69 > 1
    kinds = {p["reference"]: p["kind"] for p in json.loads(check.stdout)["problems"]}
    assert kinds == cases
    messages = " | ".join(p["message"] for p in json.loads(check.stdout)["problems"])
    for words in ("is disabled", "CRC32C", "has no version 3", "does not exist or has no versions",
                  "permission denied", "cannot be reached", "no field 'nofield'", "is not a secret name"):
        assert words in messages
    no_leak(check.stdout, check.stderr)
    for references, code in ((["${gcp:locked}", "${gcp:down}", "${gcp:off}"], 77),
                             (["${gcp:down}", "${gcp:corrupt}"], 69), (["${gcp:corrupt}"], 1)):
        write_manifest(manifest, gcp_store.address,
                       "[env]\n" + "".join(f'V{i} = "{ref}"\n' for i, ref in enumerate(references)))
        run = secretrun(child=True)
        assert run.code == code, (references, run)
        assert all(ref in run.stderr for ref in references)
        no_leak(run.stdout, run.stderr)


def test_cli_retries_a_transient_outage(gcp_store, manifest, secretrun):
    gcp_store.put(P, "db", CANARY)
    gcp_store.fail("AccessSecretVersion", Code.UNAVAILABLE, times=1)
    gcp_store.fail("AccessSecretVersion", Code.RESOURCE_EXHAUSTED, times=1)
    write_manifest(manifest, gcp_store.address, '[env]\nDB = "${gcp:db}"\n', settings='retries = 3')
    run = secretrun(child=True)
    assert run.code == 0, run
    assert run.child_env["DB"] == CANARY
    assert gcp_store.calls["AccessSecretVersion"] == 3
    no_leak(run.stdout, run.stderr)


def test_sdk_debug_logging_never_prints_a_payload(gcp_store, manifest, secretrun):
    """The SDK's logging interceptor writes response payloads at DEBUG when
    GOOGLE_SDK_PYTHON_LOGGING_SCOPE is set; the provider silences it."""
    gcp_store.put(P, "db", CANARY)
    write_manifest(manifest, gcp_store.address, '[env]\nDB = "${gcp:db}"\n')
    for args in (("--log-level", "debug", "check"), ("--log-level", "debug", "env")):
        run = secretrun(*args, env={"GOOGLE_SDK_PYTHON_LOGGING_SCOPE": "google"})
        assert run.code == 0, run
        assert "google" in run.stderr  # the SDK did log (client creation)
        no_leak(run.stdout, run.stderr)


# --- Application Default Credentials, for real ----------------------------------------


@pytest.fixture(scope="module")
def adc(tmp_path_factory):
    """A metadata server (as GKE workload identity and Cloud Run have) and a
    TLS Secret Manager that requires the token it hands out."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = (cert.private_key_pem.bytes(), b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    with MetadataServer(project=P) as metadata:
        with SecretManagerServer(tls=tls, token=metadata.token) as store:
            env = {"GOOGLE_APPLICATION_CREDENTIALS": "", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(ca_file),
                   **metadata.environ()}
            yield metadata, store, env


def adc_manifest(manifest, store, project: str = "") -> None:
    manifest(f"""\
version = 1
[settings]
timeout = "10s"
retries = 0
[providers.gcp]
type = "gcp-secretmanager"
endpoint = "localhost:{store.port}"
{project}
[env]
DB = "${{gcp:db}}"
""")


def test_adc_from_the_metadata_server(adc, manifest, secretrun):
    metadata, store, env = adc
    store.reset()
    metadata.refuse = False
    store.put(P, "db", CANARY)
    adc_manifest(manifest, store)  # no project: the credentials' own
    run = secretrun(child=True, env=env)
    assert run.code == 0, run
    assert run.child_env["DB"] == CANARY
    assert store.authorizations == [f"Bearer {metadata.token}"]
    # ADC settings are the child's too (consumed_env is empty): an app on
    # Google Cloud uses the same credentials for its other APIs.
    assert run.child_env["GCE_METADATA_HOST"] == metadata.host
    assert run.child_env["GOOGLE_APPLICATION_CREDENTIALS"] == ""
    no_leak(run.stdout, run.stderr)


def test_adc_from_a_service_account_key_file(adc, manifest, secretrun, tmp_path):
    """GOOGLE_APPLICATION_CREDENTIALS names a key: the client signs its own
    JWT (the key's token_uri, a closed port here, is never asked) and the
    project is the key's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    metadata, store, env = adc
    store.reset()
    store.put("key-proj", "db", CANARY)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key = tmp_path / "key.json"
    key.write_text(json.dumps({
        "type": "service_account", "project_id": "key-proj", "private_key_id": "k1", "private_key": pem,
        "client_email": "app@key-proj.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"http://127.0.0.1:{free_port()}/token"}))
    adc_manifest(manifest, store)
    store.token = None
    try:
        run = secretrun(child=True, env={**env, "GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    finally:
        store.token = metadata.token
    assert run.code == 0, run
    assert run.child_env["DB"] == CANARY
    [authorization] = store.authorizations
    claims = authorization.removeprefix("Bearer ").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert claims["iss"] == "app@key-proj.iam.gserviceaccount.com"
    no_leak(run.stdout, run.stderr)


def test_adc_refused_and_missing_credentials_exit_77(adc, manifest, secretrun, tmp_path):
    metadata, store, env = adc
    store.reset()
    store.put(P, "db", CANARY)
    adc_manifest(manifest, store, f'project = "{P}"')
    metadata.refuse = True
    try:
        run = secretrun(child=True, env=env)
    finally:
        metadata.refuse = False
    assert run.code == 77, run
    assert "refused the credentials" in run.stderr
    closed = f"127.0.0.1:{free_port()}"
    # NO_GCE_CHECK spares google-auth's 3 s of metadata probes off Google Cloud.
    nothing = {**env, "GCE_METADATA_HOST": closed, "GCE_METADATA_IP": closed, "NO_GCE_CHECK": "true"}
    run = secretrun(child=True, env=nothing)
    assert run.code == 77, run
    assert "no usable Application Default Credentials" in run.stderr
    run = secretrun(child=True, env={**nothing, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "none.json")})
    assert run.code == 77, run
    # A token the store does not accept.
    store.token = "another-token"
    try:
        run = secretrun(child=True, env=env)
    finally:
        store.token = metadata.token
    assert run.code == 77, run
    assert store.calls["AccessSecretVersion"] == 1
    no_leak(run.stdout, run.stderr)


def test_the_sdk_is_imported_only_when_used(gcp_store, manifest, tmp_path):
    gcp_store.put(P, "db", "x")
    code = ("import sys, secretrun; secretrun.resolve(sys.argv[1]); "
            "print(any(m.startswith(('google.cloud', 'grpc')) for m in sys.modules))")

    def imported(env: str) -> str:
        write_manifest(manifest, gcp_store.address, env)
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "secretrun.toml")], capture_output=True,
                             text=True, timeout=60, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
        return out.stdout.strip() or out.stderr

    assert imported('[env]\nA = "literal"\n') == "False"   # declared, not used
    assert imported('[env]\nA = "${gcp:db}"\n') == "True"


def test_the_test_server_follows_the_reference(gcp_store):
    """The fixture's own contract, through the real client: what `push` and
    other tests will rely on."""
    from google.api_core import exceptions as api

    client = gcp_store.client()
    parent = f"projects/{P}"
    with pytest.raises(api.InvalidArgument):   # a global secret needs a replication policy
        client.create_secret(request={"parent": parent, "secret_id": "s", "secret": {}})
    with pytest.raises(api.InvalidArgument):
        client.create_secret(request={"parent": parent, "secret_id": "bad.id",
                                      "secret": {"replication": {"automatic": {}}}})
    secret = client.create_secret(request={"parent": parent, "secret_id": "s",
                                           "secret": {"replication": {"automatic": {}}}})
    assert secret.name == f"{parent}/secrets/s"
    with pytest.raises(api.AlreadyExists):
        client.create_secret(request={"parent": parent, "secret_id": "s",
                                      "secret": {"replication": {"automatic": {}}}})
    with pytest.raises(api.InvalidArgument):   # a checksum that does not match the data
        client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"x", "data_crc32c": 1}})
    with pytest.raises(api.InvalidArgument):
        client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"x" * 65537}})
    v1 = client.add_secret_version(request={"parent": secret.name,
                                            "payload": {"data": b"one", "data_crc32c": crc32c(b"one")}})
    v2 = client.add_secret_version(request={"parent": secret.name, "payload": {"data": b"two"}})
    assert (v1.name, v1.state.name, v1.client_specified_payload_checksum) == (f"{secret.name}/versions/1",
                                                                             "ENABLED", True)
    assert not v2.client_specified_payload_checksum
    access = client.access_secret_version(name=f"{secret.name}/versions/latest")
    assert (access.name, access.payload.data, access.payload.data_crc32c) == (v2.name, b"two", crc32c(b"two"))
    assert [v.name for v in client.list_secret_versions(parent=secret.name)] == [v2.name, v1.name]
    assert client.disable_secret_version(name=v2.name).state.name == "DISABLED"
    with pytest.raises(api.FailedPrecondition, match="is in DISABLED state"):
        client.access_secret_version(name=f"{secret.name}/versions/latest", retry=None)
    assert client.enable_secret_version(name=v2.name).state.name == "ENABLED"
    destroyed = client.destroy_secret_version(name=v1.name)
    assert destroyed.state.name == "DESTROYED" and destroyed.destroy_time
    with pytest.raises(api.FailedPrecondition):   # DESTROYED is terminal
        client.enable_secret_version(name=v1.name)
    with pytest.raises(api.NotFound):
        client.get_secret_version(name=f"{secret.name}/versions/3")
    client.delete_secret(name=secret.name)
    with pytest.raises(api.NotFound):
        client.get_secret(name=secret.name)
    client.transport.close()
