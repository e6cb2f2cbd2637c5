"""``secretrun push`` / ``rotate`` / ``generate`` against the real test
servers: OpenBao, moto, the gRPC Secret Manager and the HTTPS Key Vault.

Every test checks that no value it pushed or generated reaches secretrun's
output, and that the journal holds versions, never values.
"""

from __future__ import annotations

import json
import re
import signal
import stat
import uuid

import boto3
import pytest

from secretrun import adopt
from secretrun.manifest import EnvVar
from secretrun.template import parse
from tests.aws_fixtures import MotoServer
from tests.conftest import CANARY, assert_no_canary
from tests.servers.azure import azure, azure_fake  # noqa: F401 - fixtures
from tests.servers.gcp import gcp_server, gcp_store  # noqa: F401 - fixtures

NEW = "canary-new-91b2-r0t4t3d-v4lu3"
OTHER = "canary-other-55aa-0v3rwr1t3"


def no_leak(*args):
    """Runs, and extra values (generated ones) that must appear in none of them."""
    runs = [a for a in args if not isinstance(a, str)]
    for value in (CANARY, NEW, OTHER, *[a for a in args if isinstance(a, str)]):
        for run in runs:
            assert_no_canary(run.stdout, run.stderr, canary=value)


def journal(path):
    file = path.parent / adopt.JOURNAL
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    text = file.read_text()
    for value in (CANARY, NEW, OTHER):
        assert value not in text
    return json.loads(text)


# --- generate and the rules for new values -----------------------------------------


def test_generate_lengths_and_alphabets(secretrun):
    run = secretrun("generate")
    assert run.code == 0 and re.fullmatch(r"[A-Za-z0-9]{32}\n", run.stdout)
    run = secretrun("generate", "--length", "64", "--alphabet", "hex")
    assert re.fullmatch(r"[0-9a-f]{64}\n", run.stdout)
    assert len({adopt.generate() for _ in range(50)}) == 50
    assert set(adopt.generate(2000, adopt.ALPHABETS["base64url"])) == set(adopt.ALPHABETS["base64url"])
    assert not set(adopt.ALPHABETS["ascii-printable"]) & set(" '\"`\\")
    assert secretrun("generate", "--length", "0").code == 2


def var(pattern=None, min_length=None):
    return EnvVar("X", parse("${v:x#y}"), pattern=re.compile(pattern) if pattern else None, min_length=min_length)


def test_new_values_follow_pattern_and_min_length():
    alnum, least, most = adopt.class_of("^[A-Za-z0-9]{40,}$")
    assert set(alnum) == set(adopt.ALPHABETS["alnum"]) and (least, most) == (40, None)
    assert adopt.class_of("[a-f0-9]{64}") == ("abcdef0123456789", 64, 64)
    assert adopt.class_of(r"^[A-Z_\-]+$")[0] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
    for pattern in (r"^\w{40}$", "^[^a]{10}$", "^sk_[a-z]{10}$", "^(a|b)+$"):
        assert adopt.class_of(pattern) is None
    assert re.fullmatch(r"[A-Za-z0-9]{40}", adopt.value_for(var("^[A-Za-z0-9]{40,}$"), None, None))
    assert re.fullmatch(r"[a-f0-9]{64}", adopt.value_for(var("[a-f0-9]{64}"), None, None))
    assert re.fullmatch(r"[a-z]{16}", adopt.value_for(var("^[a-z]{8,16}$"), None, None))
    assert len(adopt.value_for(var(min_length=50), None, None)) == 50
    assert len(adopt.value_for(var(), None, None)) == 32
    assert len(adopt.value_for(var(), 12, adopt.ALPHABETS["hex"])) == 12
    with pytest.raises(adopt.ProblemReport) as err:
        adopt.value_for(var("^sk_[a-z]{10}$"), None, None)
    assert err.value.code == 65 and "--alphabet" in str(err.value)
    assert adopt.parse_age("90d") == 90 * 86400 and adopt.parse_age("12h") == 43200
    with pytest.raises(ValueError):
        adopt.parse_age("soon")


# --- OpenBao ------------------------------------------------------------------------


@pytest.fixture
def vault(bao, manifest, secretrun):
    """A manifest over a fresh KV v2 path, and a runner with the root token."""
    base = f"secret/adopt/{uuid.uuid4().hex[:8]}"

    def write(env_lines: str, dotenv: str = ""):
        path = manifest(f'version = 1\n[providers.vault]\ntype = "vault"\naddress = "{bao.url}"\n'
                        f"[settings]\nretries = 0\n[env]\n" + env_lines.format(base=base))
        (path.parent / ".env").write_text(dotenv)
        return path

    def run(*args):
        return secretrun(*args, env={"VAULT_TOKEN": bao.root})

    client = bao.server.client()

    def read(rel, version=None):
        reply = client.secrets.kv.v2.read_secret_version(path=f"{base[len('secret/'):]}/{rel}", version=version,
                                                         mount_point="secret", raise_on_deleted_version=True)
        return reply["data"]["data"], reply["data"]["metadata"]["version"]

    from types import SimpleNamespace
    return SimpleNamespace(write=write, run=run, read=read, base=base, client=client)


def test_vault_dry_run_push_check_overwrite_and_rollback(vault):
    path = vault.write('DB_PASSWORD = "${{vault:{base}/db#password}}"\nDB_USER = "${{vault:{base}/db#user}}"\n'
                       'API_KEY = "${{vault:{base}/api#key}}"\nLOG_LEVEL = "info"\n'
                       'URL = "postgres://${{vault:{base}/db#user}}@db"\n'
                       'OLD = "${{vault:{base}/db?version=1#password}}"\n',
                       f"DB_PASSWORD={CANARY}\nDB_USER=app\nAPI_KEY={NEW}\nLOG_LEVEL=debug\nURL=x\n")

    dry = vault.run("push", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert re.search(r"DB_PASSWORD\s+\$\{vault:\S+/db#password\}\s+create", dry.stdout)
    assert "API_KEY" in dry.stdout
    assert "LOG_LEVEL" not in dry.stdout and "URL" not in dry.stdout and "OLD" not in dry.stdout
    assert not (path.parent / adopt.JOURNAL).exists()
    assert vault.run("check").code == 1           # nothing was written
    no_leak(dry)

    pushed = vault.run("push")
    assert pushed.code == 0, pushed.stderr
    assert "check: all" in pushed.stderr
    # Both fields of one secret in one version.
    assert vault.read("db") == ({"password": CANARY, "user": "app"}, 1)
    assert vault.read("api") == ({"key": NEW}, 1)
    assert vault.run("check").code == 0
    no_leak(pushed)

    again = vault.run("push")
    assert again.code == 0 and "unchanged" in again.stdout and vault.read("db")[1] == 1

    # A different value is refused, naming every variable, and nothing is written.
    (path.parent / ".env").write_text(f"DB_PASSWORD={OTHER}\nDB_USER=admin\nAPI_KEY={NEW}\n")
    refused = vault.run("push")
    assert refused.code == 1
    assert "DB_PASSWORD" in refused.stderr and "DB_USER" in refused.stderr and "--overwrite" in refused.stderr
    assert vault.read("db")[1] == 1
    no_leak(refused)

    over = vault.run("push", "--overwrite")
    assert over.code == 0, over.stderr
    assert vault.read("db") == ({"password": OTHER, "user": "admin"}, 2)
    records = journal(path)["records"]
    assert [r["command"] for r in records] == ["push", "push"]
    assert records[-1]["entries"] == [{**records[-1]["entries"][0], "previous": "1", "new": "2",
                                       "variables": ["DB_PASSWORD", "DB_USER"]}]
    no_leak(over)

    back = vault.run("push", "--rollback")
    assert back.code == 0, back.stderr
    assert vault.read("db") == ({"password": CANARY, "user": "app"}, 3)
    assert "restored 1" in back.stdout
    assert journal(path)["records"][1].get("rolled_back")
    no_leak(back)

    # The first push created the secrets: there is no earlier value to restore.
    first = vault.run("push", "--rollback")
    assert first.code == 0 and "kept" in first.stdout and vault.read("api")[1] == 1
    assert vault.run("push", "--rollback").code == 1     # nothing left to undo


def test_vault_field_push_keeps_other_fields_and_reports_denied(vault, bao, secretrun):
    vault.client.secrets.kv.v2.create_or_update_secret(path=vault.base[len("secret/"):] + "/db",
                                                       secret={"password": "old", "url": "postgres://x"},
                                                       mount_point="secret")
    path = vault.write('DB_PASSWORD = "${{vault:{base}/db#password}}"\n', f"DB_PASSWORD={CANARY}\n")
    dry = vault.run("push", "--dry-run")
    assert "replace" in dry.stdout
    assert vault.run("push", "--overwrite").code == 0
    assert vault.read("db")[0] == {"password": CANARY, "url": "postgres://x"}
    from_env = secretrun("push", "--from-env", "--overwrite", env={"VAULT_TOKEN": bao.root, "DB_PASSWORD": NEW})
    assert from_env.code == 0, from_env.stderr
    assert vault.read("db") == ({"password": NEW, "url": "postgres://x"}, 3)
    no_leak(dry, from_env)
    denied = secretrun("push", "--overwrite", env={"VAULT_TOKEN": "not-a-token"})
    assert denied.code == 77, denied.stderr
    no_leak(denied)
    assert path.exists()


def test_rotate_prints_only_the_version_and_keeps_the_previous_one(vault):
    path = vault.write('JWT = {{ value = "${{vault:{base}/jwt#key}}", pattern = "^[a-f0-9]{{48,}}$" }}\n'
                       'TOKEN = {{ value = "${{vault:{base}/jwt#token}}", min_length = 40 }}\n'
                       'PLAIN = "${{vault:{base}/plain#value}}"\nLITERAL = "x"\n')
    vault.client.secrets.kv.v2.create_or_update_secret(path=vault.base[len("secret/"):] + "/jwt",
                                                       secret={"key": CANARY, "token": "t"}, mount_point="secret")
    run = vault.run("rotate", "JWT")
    assert run.code == 0, run.stderr
    assert run.stdout == "2\n"
    data, version = vault.read("jwt")
    assert version == 2 and re.fullmatch(r"[a-f0-9]{48}", data["key"]) and data["token"] == "t"
    assert vault.read("jwt", version=1)[0]["key"] == CANARY        # the grace period
    no_leak(run, data["key"])

    short = vault.run("rotate", "JWT", "TOKEN", "--length", "40")    # the pattern wants 48
    assert short.code == 65 and "JWT" in short.stderr and vault.read("jwt")[1] == 2
    both = vault.run("rotate", "JWT", "TOKEN", "--length", "50")
    assert both.code == 0, both.stderr
    assert both.stdout.splitlines() == ["JWT 3", "TOKEN 3"]        # one version for the two fields
    data, _ = vault.read("jwt")
    no_leak(both, data["key"], data["token"])
    assert len(data["token"]) == len(data["key"]) == 50
    assert [r["command"] for r in journal(path)["records"]] == ["rotate", "rotate"]

    refused = vault.run("rotate", "LITERAL", "NOPE")
    assert refused.code == 1 and "LITERAL" in refused.stderr and "NOPE" in refused.stderr
    young = vault.run("rotate", "--all-older-than", "90d")
    assert young.code == 0 and young.stdout == "" and "PLAIN" in young.stderr and "does not exist" in young.stderr
    assert vault.run("rotate", "PLAIN").stdout == "1\n"       # named: created
    aged = vault.run("rotate", "--all-older-than", "0s")
    assert aged.code == 0, aged.stderr
    assert sorted(line.split()[0] for line in aged.stdout.splitlines()) == ["JWT", "PLAIN", "TOKEN"]
    assert vault.read("plain")[1] == 2 and vault.read("jwt")[1] == 4
    no_leak(young, aged)
    assert vault.run("rotate").code == 2


def test_rotate_restarts_a_watching_supervisor(bao, tmp_path, watched, secretrun):
    from tests.watch_fixtures import wait_for

    rel = f"adopt/{uuid.uuid4().hex[:8]}"
    bao.server.client().secrets.kv.v2.create_or_update_secret(path=rel, secret={"value": CANARY},
                                                              mount_point="secret")
    text = (f'version = 1\n[settings]\nwatch = true\npoll_interval = "100ms"\nkill_timeout = "3s"\n'
            f'[providers.vault]\ntype = "vault"\naddress = "{bao.url}"\n'
            f'[env]\nSECRET = "${{vault:secret/{rel}#value}}"\n')
    w = watched(text, env={"VAULT_TOKEN": bao.root})
    (first,) = w.records.wait_starts(1)
    assert first["env"]["SECRET"] == CANARY
    run = secretrun("rotate", "-m", str(tmp_path / "secretrun.toml"), "SECRET", env={"VAULT_TOKEN": bao.root})
    assert run.code == 0 and run.stdout == "2\n", run.stderr
    starts = w.records.wait_starts(2)
    fresh = starts[1]["env"]["SECRET"]
    assert fresh != CANARY and re.fullmatch(r"[A-Za-z0-9]{32}", fresh)
    wait_for(lambda: "restarted the command" in w.stderr, 10, "the restart log line")
    w.send(signal.SIGTERM)
    assert w.wait() == 143
    no_leak(run, fresh)
    assert_no_canary(w.stderr, w.stdout, canary=fresh)


@pytest.fixture
def watched(tmp_path):
    from tests.watch_fixtures import Watched

    made = []

    def start(*args, **kwargs):
        made.append(Watched(tmp_path, *args, **kwargs))
        return made[-1]

    yield start
    for w in made:
        w.close()


# --- AWS (moto) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto-adopt")).start()
    try:
        yield server
    finally:
        server.stop()


def test_aws_json_fields_one_version_rollback_and_ssm(moto, manifest, secretrun, tmp_path):
    moto.reset()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    kw = dict(endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    sm, ssm = boto3.client("secretsmanager", **kw), boto3.client("ssm", **kw)
    old = sm.create_secret(Name="prod/db", SecretString=json.dumps({"password": "old", "port": 5432,
                                                                         "user": "app"}))
    path = manifest("""
        version = 1
        [providers.aws]
        type = "aws-secretsmanager"
        [providers.ssm]
        type = "aws-ssm"
        [env]
        DB_PASSWORD = "${aws:prod/db#password}"
        DB_USER = "${aws:prod/db#user}"
        TOKEN = "${ssm:/prod/token}"
        JWT = "${aws:prod/jwt}"
        """)
    (path.parent / ".env").write_text(f"DB_PASSWORD={CANARY}\nDB_USER=app\nTOKEN={NEW}\nJWT={OTHER}\n")
    refused = secretrun("push", env=env)
    assert refused.code == 1 and "DB_PASSWORD" in refused.stderr and "DB_USER" not in refused.stderr
    pushed = secretrun("push", "--overwrite", env=env)
    assert pushed.code == 0, pushed.stderr
    current = sm.get_secret_value(SecretId="prod/db")
    assert json.loads(current["SecretString"]) == {"password": CANARY, "port": 5432, "user": "app"}
    assert sm.get_secret_value(SecretId="prod/db", VersionStage="AWSPREVIOUS")["VersionId"] == old["VersionId"]
    assert ssm.get_parameter(Name="/prod/token", WithDecryption=True)["Parameter"]["Value"] == NEW
    assert sm.get_secret_value(SecretId="prod/jwt")["SecretString"] == OTHER
    no_leak(pushed)

    back = secretrun("push", "--rollback", env=env)
    assert back.code == 0, back.stderr
    assert json.loads(sm.get_secret_value(SecretId="prod/db")["SecretString"])["password"] == "old"
    no_leak(back)

    rotated = secretrun("rotate", "--all-older-than", "0s", env=env)
    assert rotated.code == 0, rotated.stderr
    names = sorted(line.split()[0] for line in rotated.stdout.splitlines())
    assert names == ["DB_PASSWORD", "DB_USER", "JWT"]      # SSM reports no age
    assert "TOKEN" in rotated.stderr and "no age" in rotated.stderr
    no_leak(rotated)


# --- GCP and Azure ------------------------------------------------------------------


def test_gcp_push_check_and_rollback(gcp_store, manifest, secretrun):
    gcp_store.put("test-proj", "db-password", "old")
    path = manifest(f"""
        version = 1
        [providers.gcp]
        type = "gcp-secretmanager"
        project = "test-proj"
        endpoint = "{gcp_store.address}"
        insecure = true
        [env]
        DB_PASSWORD = "${{gcp:db-password}}"
        API = "${{gcp:api#key}}"
        """)
    (path.parent / ".env").write_text(f"DB_PASSWORD={CANARY}\nAPI={NEW}\n")
    (path.parent / "partial.env").write_text("API=\n")
    partial = secretrun("push", "--dry-run", "--from-dotenv", "partial.env")
    assert re.search(r"DB_PASSWORD\s+\S+\s+skipped \(no value in the source\)", partial.stdout)
    dry = secretrun("push", "--dry-run")
    assert dry.code == 0 and re.search(r"DB_PASSWORD\s+\S+\s+replace", dry.stdout) and "API" in dry.stdout
    pushed = secretrun("push", "--overwrite")
    assert pushed.code == 0, pushed.stderr
    client = gcp_store.client()
    read = lambda name: client.access_secret_version(name=f"projects/test-proj/secrets/{name}/versions/latest")
    assert read("db-password").payload.data == CANARY.encode() and read("db-password").name.endswith("/2")
    assert json.loads(read("api").payload.data) == {"key": NEW}
    back = secretrun("push", "--rollback")
    assert back.code == 0, back.stderr
    assert read("db-password").payload.data == b"old" and read("db-password").name.endswith("/3")
    no_leak(dry, pushed, back)
    assert journal(path)["records"][0]["entries"][0]["previous"] == "1"


def test_azure_push_check_rollback_and_denied(azure, manifest, secretrun):
    from tests.providers.test_azure import MANIFEST, READER, READER_SECRET, WRITER, WRITER_SECRET, sp_env

    azure.add_client(WRITER, WRITER_SECRET, permissions=("get", "set", "list"))
    azure.add_client(READER, READER_SECRET)
    first = azure.set_secret("adopt-db", "old")
    path = manifest(MANIFEST.format(url=azure.vault_url, ca=azure.ca_path) + '[env]\nDB = "${kv:adopt-db}"\n')
    (path.parent / ".env").write_text(f"DB={CANARY}\n")
    denied = secretrun("push", "--overwrite", env=sp_env(azure))
    assert denied.code == 77, denied.stderr
    writer = sp_env(azure, WRITER, WRITER_SECRET)
    pushed = secretrun("push", "--overwrite", env=writer)
    assert pushed.code == 0, pushed.stderr
    back = secretrun("push", "--rollback", env=writer)
    assert back.code == 0, back.stderr
    assert f"restored {first}" in back.stdout
    check = secretrun("env", "--reveal", "--format", "json", env=writer)
    assert json.loads(check.stdout)["DB"] == "old"
    no_leak(denied, pushed, back, check)
