"""The AWS providers against a real moto server over HTTP.

boto3 talks to moto through ``endpoint_url`` / ``AWS_ENDPOINT_URL`` with
dummy credentials; API calls are counted from moto's own request log.
Denials are real: an IAM user whose policy refuses the action, with moto
enforcing IAM. What moto cannot produce (throttling, 5xx, a KMS refusal)
comes from ``FaultProxy``, a real HTTP hop that answers in AWS's format.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import contextmanager

import boto3
import pytest

from secretrun.errors import Denied, InvalidSecret, NotFound, ProviderConfigError, Throttled, Unavailable
from secretrun.providers.aws_secretsmanager import SecretsManagerProvider
from secretrun.providers.aws_ssm import SsmProvider, parameter_name, variable_name
from secretrun.providers.base import ProviderContext, Secret, SecretId, select_field
from secretrun.resolver import fetch_all
from tests.aws_fixtures import FaultProxy, MotoServer, aws_test_environ, free_port
from tests.conftest import CANARY, assert_no_canary

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    try:
        yield server
    finally:
        server.stop()


class Aws:
    """One test's view of the moto server: admin clients to set things up,
    and the providers under test."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.env = {"AWS_ENDPOINT_URL": moto.url, "AWS_REGION": REGION}
        kw = dict(endpoint_url=moto.url, region_name=REGION, aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        self.sm = boto3.client("secretsmanager", **kw)
        self.ssm = boto3.client("ssm", **kw)
        self.iam = boto3.client("iam", **kw)

    def ctx(self, type_name: str, env=None, name: str = "aws") -> ProviderContext:
        return ProviderContext(name, type_name, dict(self.env, **(env or {})), ".", 5.0)

    def secrets(self, env=None, **options) -> SecretsManagerProvider:
        return SecretsManagerProvider.from_config(self.ctx("aws-secretsmanager", env), options)

    def params(self, env=None, **options) -> SsmProvider:
        return SsmProvider.from_config(self.ctx("aws-ssm", env, "ssm"), options)

    def user(self, name: str, statements) -> tuple:
        """An IAM user with one inline policy; returns its access key pair."""
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    @contextmanager
    def enforcing_iam(self):
        self.moto.enforce_iam(True)
        try:
            yield
        finally:
            self.moto.enforce_iam(False)

    @contextmanager
    def counting(self):
        """Yield a Counter filled, on exit, with the operations moto received."""
        counts: Counter = Counter()
        self.moto.start_recording()
        try:
            yield counts
        finally:
            self.moto.stop_recording()
            counts.update(self.moto.calls())


@pytest.fixture
def aws(moto, monkeypatch, tmp_path, caplog):
    moto.reset()
    aws_test_environ(monkeypatch, tmp_path)
    caplog.set_level(logging.DEBUG, logger="secretrun")
    yield Aws(moto)
    # Whatever a test did, nothing it logged holds the canary.
    assert_no_canary(caplog.text)


def sid(path, version=None, tree=False, provider="aws"):
    return SecretId(provider, path, version, tree)


def error_of(call):
    with pytest.raises(Exception) as info:
        call()
    assert_no_canary(str(info.value), repr(info.value))
    return info.value


ALLOW_ALL = {"Effect": "Allow", "Action": ["secretsmanager:*", "ssm:*"], "Resource": "*"}


# --- Secrets Manager ---------------------------------------------------------------


def test_string_secret_by_name_full_and_partial_arn(aws):
    created = aws.sm.create_secret(Name="prod/jwt", SecretString=CANARY)
    provider = aws.secrets()
    arn = created["ARN"]
    for path in ("prod/jwt", arn, arn[:-7]):
        got = provider.fetch(sid(path))
        assert got.value == CANARY
        assert got.version == created["VersionId"]
        assert_no_canary(repr(got))
    assert "us-east-1" in provider.describe() and aws.moto.url in provider.describe()


def test_json_fields_and_import(aws):
    doc = {"user": "app", "db": {"password": CANARY, "port": 5432}}
    aws.sm.create_secret(Name="prod/db", SecretString=json.dumps(doc))
    aws.sm.create_secret(Name="prod/plain", SecretString=CANARY)
    provider = aws.secrets()
    whole = provider.fetch(sid("prod/db"))
    assert select_field(whole.value, "db.password", "x") == CANARY
    assert select_field(whole.value, "user", "x") == "app"
    imported = provider.fetch(sid("prod/db", tree=True))
    assert imported.value == doc and imported.version == whole.version
    error = error_of(lambda: provider.fetch(sid("prod/plain", tree=True)))
    assert isinstance(error, InvalidSecret) and "prod/plain" in str(error) and "not JSON" in str(error)


def test_binary_secrets(aws):
    raw = b"\x00\xff\xfe" + CANARY.encode()
    aws.sm.create_secret(Name="tls/der", SecretBinary=raw)
    aws.sm.create_secret(Name="tls/pem", SecretBinary=CANARY.encode())
    provider = aws.secrets()
    assert provider.fetch(sid("tls/der")).value == raw
    assert provider.fetch(sid("tls/pem")).value == CANARY   # valid UTF-8: usable as text


def test_versions_and_stages(aws):
    first = aws.sm.create_secret(Name="rotating", SecretString="one")["VersionId"]
    second = aws.sm.put_secret_value(SecretId="rotating", SecretString="two")["VersionId"]
    pending = aws.sm.put_secret_value(SecretId="rotating", SecretString="three",
                                      VersionStages=["AWSPENDING"])["VersionId"]
    provider = aws.secrets()
    expected = {None: ("two", second), "AWSCURRENT": ("two", second), "AWSPREVIOUS": ("one", first),
                "AWSPENDING": ("three", pending), first: ("one", first)}
    for version, (value, version_id) in expected.items():
        got = provider.fetch(sid("rotating", version))
        assert (got.value, got.version) == (value, version_id), version
    error = error_of(lambda: provider.fetch(sid("rotating", "NOSUCHSTAGE")))
    assert isinstance(error, NotFound) and "rotating" in str(error)


def test_batch_calls_counted(aws):
    for i in range(45):
        aws.sm.create_secret(Name=f"app/s{i:02}", SecretString=f"value-{i}")
    aws.sm.create_secret(Name="app/pinned", SecretString="old")
    aws.sm.put_secret_value(SecretId="app/pinned", SecretString="new")
    provider = aws.secrets()
    wanted = [sid(f"app/s{i:02}") for i in range(45)] + [sid("app/missing"), sid("app/pinned", "AWSPREVIOUS")]
    with aws.counting() as calls:
        got = fetch_all({"aws": provider}, wanted, retries=0)
    # 47 ids in chunks of 20: 3 batch calls; the pinned one needs its own read.
    assert calls == Counter({"secretsmanager.BatchGetSecretValue": 3, "secretsmanager.GetSecretValue": 1})
    assert [got[sid(f"app/s{i:02}")].value for i in range(45)] == [f"value-{i}" for i in range(45)]
    assert got[sid("app/pinned", "AWSPREVIOUS")].value == "old"
    missing = got[sid("app/missing")]
    assert isinstance(missing, NotFound) and "app/missing" in str(missing)


def test_batch_denied_falls_back_to_single_reads(aws, monkeypatch, caplog):
    for i in range(30):
        aws.sm.create_secret(Name=f"svc/s{i:02}", SecretString=CANARY + str(i))
    key, secret = aws.user("no-batch", [ALLOW_ALL, {"Effect": "Deny", "Action": "secretsmanager:BatchGetSecretValue",
                                                    "Resource": "*"}])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    provider = aws.secrets()
    wanted = [sid(f"svc/s{i:02}") for i in range(30)]
    with aws.enforcing_iam():
        with aws.counting() as first:
            got = fetch_all({"aws": provider}, wanted, retries=0)
        with aws.counting() as second:
            again = fetch_all({"aws": provider}, wanted, retries=0)
    for result in (got, again):
        assert [result[s].value for s in wanted] == [CANARY + str(i) for i in range(30)]
    # Two chunks may both try the batch call before the first denial is seen.
    assert 1 <= first["secretsmanager.BatchGetSecretValue"] <= 2
    assert first["secretsmanager.GetSecretValue"] == 30
    assert second == Counter({"secretsmanager.GetSecretValue": 30})
    notes = [r for r in caplog.records if "BatchGetSecretValue is denied" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.DEBUG
    assert notes[0].name == "secretrun.providers.aws"


def test_access_denied_is_77(aws, monkeypatch):
    aws.sm.create_secret(Name="locked", SecretString=CANARY)
    aws.ssm.put_parameter(Name="/locked", Value=CANARY, Type="SecureString")
    key, secret = aws.user("nobody", [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    secrets, params = aws.secrets(), aws.params()
    with aws.enforcing_iam():
        errors = [error_of(lambda: secrets.fetch(sid("locked"))),
                  error_of(lambda: params.fetch(sid("/locked", provider="ssm"))),
                  error_of(lambda: secrets.probe(sid("locked")))]
        batch = fetch_all({"aws": secrets}, [sid("locked"), sid("other")], retries=0)
    for error in errors + list(batch.values()):
        assert isinstance(error, Denied) and error.kind == 77
        assert "access denied" in str(error)
    assert "'locked'" in str(errors[0]) and "GetSecretValue" in str(errors[0])


def test_invalid_keys_are_denied(aws, monkeypatch):
    aws.sm.create_secret(Name="s", SecretString=CANARY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    with aws.enforcing_iam():
        error = error_of(lambda: aws.secrets().fetch(sid("s")))
    assert isinstance(error, Denied)


def test_no_credentials_is_denied(aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    error = error_of(lambda: aws.secrets().fetch(sid("s")))
    assert isinstance(error, Denied) and "no AWS credentials" in str(error)


def test_not_found_names_the_secret(aws):
    error = error_of(lambda: aws.secrets().fetch(sid("prod/nope")))
    assert isinstance(error, NotFound) and error.kind == 1
    assert "secret 'prod/nope' does not exist in AWS Secrets Manager" in str(error)
    error = error_of(lambda: aws.params().fetch(sid("/prod/nope", provider="ssm")))
    assert isinstance(error, NotFound) and "parameter '/prod/nope' does not exist" in str(error)
    aws.ssm.put_parameter(Name="/prod/v", Value="x", Type="String")
    error = error_of(lambda: aws.params().fetch(sid("/prod/v", "9", provider="ssm")))
    assert isinstance(error, NotFound) and "/prod/v" in str(error)


def test_secret_marked_for_deletion(aws):
    aws.sm.create_secret(Name="old", SecretString=CANARY)
    aws.sm.delete_secret(SecretId="old", RecoveryWindowInDays=7)
    provider = aws.secrets()
    for call in (lambda: provider.fetch(sid("old")), lambda: provider.probe(sid("old"))):
        error = error_of(call)
        assert isinstance(error, NotFound) and error.kind == 1
        assert "'old' is marked for deletion" in str(error)
    batch = fetch_all({"aws": provider}, [sid("old"), sid("other")], retries=0)
    assert "marked for deletion" in str(batch[sid("old")])


@pytest.fixture
def proxy(moto):
    with FaultProxy(moto.port) as p:
        yield p


def test_throttling_is_retried_by_the_sdk_then_unavailable(aws, proxy):
    aws.sm.create_secret(Name="busy", SecretString=CANARY)
    proxy.fail("GetSecretValue", 400, "ThrottlingException")
    error = error_of(lambda: aws.secrets(endpoint_url=proxy.url).fetch(sid("busy")))
    assert isinstance(error, Unavailable) and error.retryable and error.kind == 69
    assert "throttled" in str(error) and isinstance(error, Throttled)
    # The SDK's own retries stay minimal: 2 attempts by default, as configured.
    assert proxy.hits["GetSecretValue"] == 2
    proxy.clear()
    proxy.fail("GetSecretValue", 400, "ThrottlingException")
    with pytest.raises(Unavailable):
        aws.secrets({"AWS_MAX_ATTEMPTS": "1"}, endpoint_url=proxy.url).fetch(sid("busy"))
    assert proxy.hits["GetSecretValue"] == 1
    proxy.clear()
    assert aws.secrets(endpoint_url=proxy.url).fetch(sid("busy")).value == CANARY


def test_retry_mode_is_the_users(aws):
    assert aws.secrets().aws.client().meta.config.retries["mode"] == "standard"
    adaptive = aws.secrets({"AWS_RETRY_MODE": "adaptive", "AWS_MAX_ATTEMPTS": "4"}).aws.client()
    assert adaptive.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 4}


def test_server_errors_and_batch_throttling_are_unavailable(aws, proxy):
    aws.sm.create_secret(Name="a", SecretString=CANARY)
    aws.ssm.put_parameter(Name="/a", Value=CANARY, Type="SecureString")
    once = {"AWS_MAX_ATTEMPTS": "1"}
    proxy.fail("GetSecretValue", 500, "InternalServiceError")
    proxy.fail("GetParameter", 503, "ServiceUnavailable")
    proxy.fail("BatchGetSecretValue", 400, "ThrottlingException")
    for call in (lambda: aws.secrets(once, endpoint_url=proxy.url).fetch(sid("a")),
                 lambda: aws.params(once, endpoint_url=proxy.url).fetch(sid("/a", provider="ssm")),
                 lambda: aws.secrets(once, endpoint_url=proxy.url).fetch_batch((sid("a"), sid("b")))):
        error = error_of(call)
        assert isinstance(error, Unavailable), error
    # The resolver retries Unavailable: the batch is tried 1 + retries times.
    proxy.clear()
    proxy.fail("BatchGetSecretValue", 400, "ThrottlingException")
    got = fetch_all({"aws": aws.secrets(once, endpoint_url=proxy.url)}, [sid("a"), sid("b")], retries=2,
                    sleep=lambda s: None)
    assert isinstance(got[sid("a")], Unavailable) and proxy.hits["BatchGetSecretValue"] == 3


def test_refused_credentials_do_not_trigger_the_batch_fallback(aws, proxy):
    aws.sm.create_secret(Name="a", SecretString=CANARY)
    proxy.fail("BatchGetSecretValue", 400, "ExpiredTokenException")
    provider = aws.secrets(endpoint_url=proxy.url)
    error = error_of(lambda: provider.fetch_batch((sid("a"), sid("b"))))
    assert isinstance(error, Denied) and "credentials have expired" in str(error)
    assert provider.batch_size == 20 and "GetSecretValue" not in proxy.hits


def test_connection_refused_is_unavailable(aws):
    dead = f"http://127.0.0.1:{free_port()}"
    error = error_of(lambda: aws.secrets({"AWS_MAX_ATTEMPTS": "1"}, endpoint_url=dead).fetch(sid("x")))
    assert isinstance(error, Unavailable) and "cannot reach" in str(error) and dead in str(error)


def test_kms_decrypt_denied_is_77(aws, proxy):
    aws.sm.create_secret(Name="kms", SecretString=CANARY)
    aws.ssm.put_parameter(Name="/kms", Value=CANARY, Type="SecureString")
    proxy.fail("GetSecretValue", 400, "DecryptionFailure")
    proxy.fail("GetParameter", 400, "AccessDeniedException")
    error = error_of(lambda: aws.secrets(endpoint_url=proxy.url).fetch(sid("kms")))
    assert isinstance(error, Denied) and "KMS key" in str(error)
    error = error_of(lambda: aws.params(endpoint_url=proxy.url).fetch(sid("/kms", provider="ssm")))
    assert isinstance(error, Denied)


def test_probe_follows_rotation_with_describe_only(aws):
    aws.sm.create_secret(Name="rot", SecretString="one")
    provider = aws.secrets()
    fetched = provider.fetch(sid("rot"))
    with aws.counting() as calls:
        assert provider.probe(sid("rot")) == fetched.version
    assert calls == Counter({"secretsmanager.DescribeSecret": 1})
    new = aws.sm.put_secret_value(SecretId="rot", SecretString="two")["VersionId"]
    assert provider.probe(sid("rot")) == new == provider.fetch(sid("rot")).version
    assert provider.probe(sid("rot", "AWSPREVIOUS")) == fetched.version
    with aws.counting() as calls:
        assert provider.probe(sid("rot", fetched.version)) == fetched.version
    assert not calls   # a VersionId is immutable: nothing to ask


def test_session_refresh_refetches_only_what_rotated(aws, manifest):
    from secretrun.manifest import load
    from secretrun.resolver import Session

    aws.sm.create_secret(Name="a", SecretString="a1")
    aws.sm.create_secret(Name="b", SecretString=json.dumps({"k": "b1"}))
    aws.ssm.put_parameter(Name="/p", Value="p1", Type="String")
    path = manifest(f"""
        version = 1
        [providers.aws]
        type = "aws-secretsmanager"
        endpoint_url = "{aws.moto.url}"
        [providers.ssm]
        type = "aws-ssm"
        [env]
        A = "${{aws:a}}"
        B = "${{aws:b#k}}"
        P = "${{ssm:p}}"
        """)
    session = Session(load(str(path)), environ=aws.env)
    try:
        assert {k: session.resolve().env[k] for k in "ABP"} == {"A": "a1", "B": "b1", "P": "p1"}
        aws.sm.put_secret_value(SecretId="a", SecretString="a2")
        aws.ssm.put_parameter(Name="/p", Value="p2", Type="String", Overwrite=True)
        with aws.counting() as calls:
            env = session.refresh().env
        assert {k: env[k] for k in "ABP"} == {"A": "a2", "B": "b1", "P": "p2"}
        assert calls == Counter({"secretsmanager.DescribeSecret": 2, "secretsmanager.GetSecretValue": 1,
                                 "ssm.GetParameter": 2})
    finally:
        session.close()


def test_write_creates_then_versions(aws):
    provider = aws.secrets()
    first = provider.write(sid("new/secret"), CANARY)
    assert provider.fetch(sid("new/secret")) == Secret(CANARY, first)
    second = provider.write(sid("new/secret"), {"k": "v"})
    assert second != first and provider.fetch(sid("new/secret", "AWSPREVIOUS")).version == first
    assert json.loads(provider.fetch(sid("new/secret")).value) == {"k": "v"}
    params = aws.params()
    assert params.write(sid("/new/p", provider="ssm"), "v1") == "1"
    assert aws.ssm.get_parameter(Name="/new/p")["Parameter"]["Type"] == "SecureString"
    aws.ssm.put_parameter(Name="/plain", Value="x", Type="String")
    assert params.write(sid("plain", provider="ssm"), "y") == "2"
    assert aws.ssm.get_parameter(Name="plain")["Parameter"]["Type"] == "String"


# --- session options ---------------------------------------------------------------


def test_assume_role_with_external_id(aws):
    aws.sm.create_secret(Name="x", SecretString=CANARY)
    role = "arn:aws:iam::123456789012:role/reader"
    provider = aws.secrets(role_arn=role, external_id="ext-42", role_session_name="ci-run")
    with aws.counting():
        assert provider.fetch(sid("x")).value == CANARY
        requests = aws.moto.requests()
    assert [op for op, _, _ in requests] == ["query.AssumeRole", "secretsmanager.GetSecretValue"]
    body = requests[0][2]
    assert "ExternalId=ext-42" in body and "RoleSessionName=ci-run" in body
    # The secret was read with the role's temporary keys, not the chain's.
    assert "Credential=testing/" not in requests[1][1]["authorization"]
    assert "x-amz-security-token" in requests[1][1]


def test_assume_role_refused_is_77(aws, monkeypatch):
    aws.sm.create_secret(Name="x", SecretString=CANARY)
    key, secret = aws.user("no-sts", [ALLOW_ALL])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    provider = aws.secrets(role_arn="arn:aws:iam::123456789012:role/reader")
    with aws.enforcing_iam():
        error = error_of(lambda: provider.fetch(sid("x")))
    assert isinstance(error, Denied) and "assuming role arn:aws:iam::123456789012:role/reader" in str(error)


def test_profile_from_shared_credentials(aws, monkeypatch, tmp_path):
    aws.sm.create_secret(Name="x", SecretString=CANARY)
    key, secret = aws.user("ci", [ALLOW_ALL])
    (tmp_path / "aws-credentials").write_text(
        f"[ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    # Env keys are ignored when a profile is named explicitly; these are invalid.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    with aws.enforcing_iam():
        assert aws.secrets(profile="ci").fetch(sid("x")).value == CANARY
    error = error_of(lambda: aws.secrets(profile="nope").fetch(sid("x")))
    assert isinstance(error, ProviderConfigError) and "'nope'" in str(error)


def test_region_and_endpoint_from_the_environment(aws):
    ctx_env = {"AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-3", "AWS_ENDPOINT_URL": "",
               "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws.moto.url}
    provider = SecretsManagerProvider.from_config(
        ProviderContext("aws", "aws-secretsmanager", ctx_env, ".", 5.0), {})
    aws.sm.create_secret(Name="r", SecretString="v")  # in us-east-1
    assert isinstance(error_of(lambda: provider.fetch(sid("r"))), NotFound)
    assert "eu-west-3" in provider.describe()
    assert aws.secrets(region="us-east-1").fetch(sid("r")).value == "v"
    no_region = SecretsManagerProvider.from_config(
        ProviderContext("aws", "aws-secretsmanager", {"AWS_ENDPOINT_URL": aws.moto.url}, ".", 5.0), {})
    error = error_of(lambda: no_region.fetch(sid("r")))
    assert isinstance(error, ProviderConfigError) and "region" in str(error)


def test_options_are_validated_together(aws):
    with pytest.raises(ProviderConfigError) as info:
        aws.secrets(regoin="x", endpoint_url="localhost:4566", role_arn="reader", external_id="e")
    message = str(info.value)
    for part in ("unknown option 'regoin'", "'endpoint_url' must be", "'role_arn' must be"):
        assert part in message
    with pytest.raises(ProviderConfigError) as info:
        aws.params(external_id="e", region=3)
    assert "'external_id' needs 'role_arn'" in str(info.value) and "'region' must be a string" in str(info.value)


# --- SSM Parameter Store -------------------------------------------------------------


def test_ssm_types_names_versions_labels(aws):
    aws.ssm.put_parameter(Name="/app/url", Value="https://x", Type="String")
    aws.ssm.put_parameter(Name="/app/hosts", Value="a,b,c", Type="StringList")
    aws.ssm.put_parameter(Name="/app/key", Value="old-" + CANARY, Type="SecureString")
    aws.ssm.put_parameter(Name="/app/key", Value=CANARY, Type="SecureString", Overwrite=True)
    aws.ssm.label_parameter_version(Name="/app/key", ParameterVersion=1, Labels=["stable"])
    aws.ssm.put_parameter(Name="flat", Value="f", Type="String")
    params = aws.params()
    arn = aws.ssm.get_parameter(Name="/app/url")["Parameter"]["ARN"]
    cases = {("/app/url", None): "https://x", ("app/url", None): "https://x", (arn, None): "https://x",
             ("/app/hosts", None): "a,b,c", ("app/key", None): CANARY, ("/app/key", "1"): "old-" + CANARY,
             ("/app/key", "stable"): "old-" + CANARY, ("flat", None): "f"}
    for (path, version), value in cases.items():
        assert params.fetch(sid(path, version, provider="ssm")).value == value, path
    assert params.fetch(sid("/app/key", provider="ssm")).version == "2"
    assert parameter_name("app/x") == "/app/x" and parameter_name("x") == "x"
    error = error_of(lambda: params.fetch(sid("/app/key", "no:pe", provider="ssm")))
    assert isinstance(error, InvalidSecret)


def test_ssm_batches_of_ten(aws):
    for i in range(25):
        aws.ssm.put_parameter(Name=f"/b/p{i:02}", Value=f"v{i}", Type="SecureString")
    aws.ssm.put_parameter(Name="/b/p00", Value="v0-new", Type="SecureString", Overwrite=True)
    aws.ssm.label_parameter_version(Name="/b/p01", ParameterVersion=1, Labels=["blue"])
    params = aws.params()
    wanted = ([sid(f"/b/p{i:02}", provider="ssm") for i in range(25)]
              + [sid("b/p00", "1", provider="ssm"), sid("/b/p01", "blue", provider="ssm"),
                 sid("/b/missing", provider="ssm")])
    with aws.counting() as calls:
        got = fetch_all({"ssm": params}, wanted, retries=0)
    assert calls["ssm.GetParameters"] == 3 and calls["ssm.GetParametersByPath"] == 0
    # moto answers without the Selector AWS returns, so a label asked for next
    # to the same name without one cannot be matched, and is read alone.
    assert calls["ssm.GetParameter"] <= 1
    assert got[wanted[0]].value == "v0-new" and got[wanted[0]].version == "2"
    assert [got[s].value for s in wanted[1:25]] == [f"v{i}" for i in range(1, 25)]
    assert got[wanted[25]].value == "v0" and got[wanted[26]].value == "v1"
    assert isinstance(got[wanted[27]], NotFound) and "/b/missing" in str(got[wanted[27]])


def test_ssm_polling_probes_ten_names_a_call_without_decryption(aws):
    """A poll of 25 parameters costs 3 GetParameters calls (the quota's
    unit), never a decryption, and sees a new version."""
    from secretrun.resolver import probe_all

    for i in range(25):
        aws.ssm.put_parameter(Name=f"/poll/p{i:02}", Value=CANARY, Type="SecureString")
    params = aws.params()
    asked = []
    params.aws.client().meta.events.register(
        "provide-client-params.ssm.*", lambda params, **_: asked.append(params.get("WithDecryption")))
    wanted = [sid(f"/poll/p{i:02}", provider="ssm") for i in range(25)] + [sid("/poll/missing", provider="ssm")]
    with aws.counting() as calls:
        got = probe_all(params, wanted)
    assert calls == Counter({"ssm.GetParameters": 3}) and asked == [False] * 3
    assert [got[s] for s in wanted[:25]] == ["1"] * 25 and isinstance(got[wanted[25]], NotFound)
    aws.ssm.put_parameter(Name="/poll/p07", Value="new", Type="SecureString", Overwrite=True)
    assert probe_all(params, wanted)[wanted[7]] == "2"


def test_ssm_path_import_and_name_rule(aws):
    for i in range(23):
        aws.ssm.put_parameter(Name=f"/svc/prod/bulk/k{i:02}", Value=str(i), Type="String")
    aws.ssm.put_parameter(Name="/svc/prod/db/max-conns", Value="10", Type="String")
    aws.ssm.put_parameter(Name="/svc/prod/db/password", Value=CANARY, Type="SecureString")
    aws.ssm.put_parameter(Name="/svc/prod/tls.crt", Value="pem", Type="String")
    aws.ssm.put_parameter(Name="/svc/other", Value="no", Type="String")
    params = aws.params()
    with aws.counting() as calls:
        got = params.fetch(sid("svc/prod/", tree=True, provider="ssm"))
    assert calls == Counter({"ssm.GetParametersByPath": 3})     # 26 parameters, 10 a page
    assert got.value["DB_MAX_CONNS"] == "10" and got.value["DB_PASSWORD"] == CANARY
    assert got.value["TLS_CRT"] == "pem" and got.value["BULK_K07"] == "7" and len(got.value) == 26
    assert params.probe(sid("/svc/prod", tree=True, provider="ssm")) == got.version
    assert CANARY not in got.version
    aws.ssm.put_parameter(Name="/svc/prod/db/password", Value="new", Type="SecureString", Overwrite=True)
    assert params.probe(sid("/svc/prod", tree=True, provider="ssm")) != got.version
    assert variable_name("/a/b/c-d.e", "/a/") == "B_C_D_E"

    aws.ssm.put_parameter(Name="/clash/a-b", Value="1", Type="String")
    aws.ssm.put_parameter(Name="/clash/a_b", Value="2", Type="String")
    error = error_of(lambda: params.fetch(sid("/clash", tree=True, provider="ssm")))
    assert isinstance(error, InvalidSecret) and "/clash/a-b" in str(error) and "A_B" in str(error)
    error = error_of(lambda: params.fetch(sid("/empty", tree=True, provider="ssm")))
    assert isinstance(error, NotFound) and "/empty" in str(error)


def test_ssm_probe_reads_versions_without_decryption(aws):
    aws.ssm.put_parameter(Name="/pr/k", Value=CANARY, Type="SecureString")
    params = aws.params()
    fetched = params.fetch(sid("/pr/k", provider="ssm"))
    with aws.counting():
        assert params.probe(sid("pr/k", provider="ssm")) == fetched.version == "1"
        requests = aws.moto.requests()
    assert [op for op, _, _ in requests] == ["ssm.GetParameter"]
    assert json.loads(requests[0][2])["WithDecryption"] is False
    aws.ssm.put_parameter(Name="/pr/k", Value="x", Type="SecureString", Overwrite=True)
    assert params.probe(sid("/pr/k", provider="ssm")) == "2"
    assert params.probe(sid("/pr/k", "1", provider="ssm")) == "1"


# --- end to end, through the real command -------------------------------------------------


@pytest.fixture
def cli_env(aws, tmp_path):
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": aws.moto.url, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}


def test_cli_resolves_both_stores(aws, manifest, secretrun, cli_env):
    aws.sm.create_secret(Name="prod/db", SecretString=json.dumps({"password": CANARY, "user": "app"}))
    aws.sm.create_secret(Name="prod/key", SecretBinary=b"\x00\xff" + CANARY.encode())
    aws.ssm.put_parameter(Name="/prod/app/log-level", Value="info", Type="String")
    aws.ssm.put_parameter(Name="/prod/app/api-token", Value=CANARY, Type="SecureString")
    path = manifest("""
        version = 1
        [providers.aws]
        type = "aws-secretsmanager"
        [providers.ssm]
        type = "aws-ssm"
        [env]
        DB_PASSWORD = "${aws:prod/db#password}"
        DB_USER = "${aws:prod/db#user}"
        KEY_FILE = { value = "${aws:prod/key}", file = true }
        TOKEN = "${ssm:prod/app/api-token}"
        [[import]]
        from = "${ssm:/prod/app}"
        prefix = "APP_"
        """)
    run = secretrun("-m", str(path), env=cli_env, child=True)
    assert run.code == 0, run.stderr
    env = run.child_env
    assert env["DB_PASSWORD"] == CANARY and env["DB_USER"] == "app" and env["TOKEN"] == CANARY
    assert env["APP_LOG_LEVEL"] == "info" and env["APP_API_TOKEN"] == CANARY
    assert_no_canary(run.stdout, run.stderr)

    check = secretrun("check", "-m", str(path), "--format", "json", env=cli_env)
    assert check.code == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] and {r["variable"] for r in report["variables"]} >= {"DB_PASSWORD", "APP_API_TOKEN"}
    assert_no_canary(check.stdout, check.stderr)


def test_cli_reports_every_problem_without_values(aws, manifest, secretrun, cli_env):
    aws.sm.create_secret(Name="bin", SecretBinary=b"\xff\xfe" + CANARY.encode())
    aws.sm.create_secret(Name="gone", SecretString=CANARY)
    aws.sm.delete_secret(SecretId="gone")
    path = manifest("""
        version = 1
        [providers.aws]
        type = "aws-secretsmanager"
        [env]
        MISSING = "${aws:prod/missing}"
        GONE = "${aws:gone}"
        BINARY = "${aws:bin}"
        """)
    run = secretrun("-m", str(path), "--log-level", "debug", env=cli_env, child=True)
    assert run.code == 1
    for part in ("MISSING", "prod/missing", "GONE", "marked for deletion", "BINARY", "file = true"):
        assert part in run.stderr, part
    assert_no_canary(run.stdout, run.stderr)


def test_cli_denied_is_77(aws, manifest, secretrun, cli_env):
    aws.sm.create_secret(Name="locked", SecretString=CANARY)
    key, secret = aws.user("ro", [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}])
    path = manifest("""
        version = 1
        [providers.aws]
        type = "aws-secretsmanager"
        [env]
        LOCKED = "${aws:locked}"
        """)
    with aws.enforcing_iam():
        run = secretrun("-m", str(path), env=dict(cli_env, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret),
                        child=True)
    assert run.code == 77 and "LOCKED" in run.stderr and "access denied" in run.stderr
    assert_no_canary(run.stdout, run.stderr)
