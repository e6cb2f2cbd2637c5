"""``kubernetes``: Secrets and ConfigMaps through the API, against the
wire-level API server in ``tests/servers/kubernetes.py`` (TLS with a
throwaway CA): credentials as kubectl finds them, errors, the watch as a
change source, then the ``secretrun`` command, ``--watch`` included."""

import base64
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from secretrun.errors import Denied, NotFound, ProviderConfigError, Unavailable
from secretrun.providers.base import ProviderContext, SecretId
from secretrun.providers.kubernetes import KubernetesProvider
from tests.conftest import CANARY, assert_no_canary, free_port
from tests.servers.kubernetes import KubeFake, kube, kube_fake, kubeconfig  # noqa: F401 - fixtures
from tests.watch_fixtures import Watched, manifest_text, wait_for

BINARY = b"\xff\xfe\x00binary"
NEW = "rotated-value-2"


@pytest.fixture
def cluster(kube):
    """A user ``app`` who may read Secrets and ConfigMaps in ``default``
    and ``team-a``; the objects the tests read."""
    token = kube.add_token("app")
    for namespace in ("default", "team-a"):
        for resource in ("secrets", "configmaps"):
            kube.allow("app", ("get", "list", "watch"), resource, namespace)
    kube.put("db", {"password": CANARY, "user": "app", "blob": BINARY})
    kube.put("api", {"key": "team-key"}, namespace="team-a")
    kube.put("app-config", {"LOG_LEVEL": "debug", "FEATURE": "on"}, resource="configmaps")
    kube.put("app", {"ignored": "x"}, string_data={"DATABASE_URL": f"postgres://app:{CANARY}@db"})
    return token


@pytest.fixture
def make(tmp_path):
    built = []

    def build(environ=None, **options):
        ctx = ProviderContext("k8s", "kubernetes", environ or {}, str(tmp_path), 5.0)
        provider = KubernetesProvider.from_config(ctx, options)
        built.append(provider)
        return provider

    yield build
    for provider in built:
        provider.close()


def sid(path, tree=False):
    return SecretId("k8s", path, None, tree)


def refused(call, kind):
    with pytest.raises(kind) as info:
        call()
    assert_no_canary(str(info.value))
    return str(info.value)


# --- reading, through each kind of credential ------------------------------------


def test_kubeconfig_bearer_token_keys_imports_versions(kube, cluster, make, tmp_path):
    kc = kubeconfig(kube, str(tmp_path / "config"), token=cluster)
    provider = make({"KUBECONFIG": kc})
    secret = provider.fetch(sid("db"))
    assert secret.value["password"] == CANARY and secret.value["user"] == "app"
    assert secret.value["blob"] == BINARY              # not UTF-8: bytes, for file = true only
    assert secret.version == kube.objects[("secrets", "default", "db")]["metadata"]["resourceVersion"]
    assert provider.fetch(sid("team-a/api")).value == {"key": "team-key"}
    assert provider.fetch(sid("app")).value["DATABASE_URL"].endswith(f"{CANARY}@db")   # stringData merged
    configmaps = make({"KUBECONFIG": kc}, kind="configmap")
    assert configmaps.fetch(sid("app-config", tree=True)).value == {"LOG_LEVEL": "debug", "FEATURE": "on"}
    assert [r.user for r in kube.log()] == ["app"] * 4


def test_in_cluster_token_is_reread_before_every_request(kube, cluster, make, tmp_path):
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(cluster)
    (sa / "namespace").write_text("team-a")
    (sa / "ca.crt").write_bytes(Path(kube.ca_path).read_bytes())
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port)}
    provider = make(env, serviceaccount_dir=str(sa))
    assert provider.fetch(sid("api")).value == {"key": "team-key"}     # the pod's namespace
    rotated = kube.add_token("app")
    (sa / "token").write_text(rotated + "\n")                          # the kubelet's rotation
    assert provider.fetch(sid("api")).value == {"key": "team-key"}
    assert kube.tokens_seen == [cluster, rotated]
    with pytest.raises(ProviderConfigError, match="KUBERNETES_SERVICE_HOST"):
        make({}, serviceaccount_dir=str(sa))


def test_client_certificate_with_inline_ca_data(kube, cluster, make, tmp_path):
    kube.allow("alice", ("get",), "secrets", "default", names=["db"])
    kc = kubeconfig(kube, str(tmp_path / "config"), cert=kube.client_cert("alice"), ca_inline=True)
    provider = make(kubeconfig=kc)
    assert provider.fetch(sid("db")).value["password"] == CANARY
    assert kube.log()[-1].user == "alice"
    message = refused(lambda: provider.fetch(sid("app")), Denied)     # resourceNames: db only
    assert "RBAC must allow get secrets in namespace default" in message


def test_exec_credential_plugin(kube, cluster, make, tmp_path):
    plugin = tmp_path / "get-token"
    plugin.write_text(f"#!{sys.executable}\nimport json\n"
                      f"print(json.dumps({{'apiVersion': 'client.authentication.k8s.io/v1beta1', "
                      f"'kind': 'ExecCredential', 'status': {{'token': {cluster!r}}}}}))\n")
    plugin.chmod(0o700)
    kc = kubeconfig(kube, str(tmp_path / "config"), exec_command=[str(plugin)])
    provider = make(kubeconfig=kc)
    assert provider.fetch(sid("db")).value["user"] == "app"
    failing = tmp_path / "fail"
    failing.write_text(f"#!/bin/sh\necho 'plugin says {CANARY}' >&2\nexit 3\n")
    failing.chmod(0o700)
    kc2 = kubeconfig(kube, str(tmp_path / "config2"), exec_command=[str(failing)])
    message = refused(lambda: make(kubeconfig=kc2).fetch(sid("db")), Denied)
    assert "exec credential plugin failed" in message


def test_the_default_kubeconfig_is_under_home(kube, cluster, make, tmp_path):
    (tmp_path / ".kube").mkdir()
    kubeconfig(kube, str(tmp_path / ".kube" / "config"), token=cluster, namespace="team-a")
    assert make({"HOME": str(tmp_path)}).fetch(sid("api")).value == {"key": "team-key"}


def test_context_option_and_the_contexts_namespace(kube, cluster, make, tmp_path):
    kc = kubeconfig(kube, str(tmp_path / "config"), token=cluster,
                    extra_contexts={"team": {"namespace": "team-a"}})
    assert make({"KUBECONFIG": kc}, context="team").fetch(sid("api")).value == {"key": "team-key"}
    assert make({"KUBECONFIG": kc}, namespace="team-a").fetch(sid("api")).value == {"key": "team-key"}
    with pytest.raises(ProviderConfigError, match="Context 'nope' not found"):
        make({"KUBECONFIG": kc}, context="nope")


@pytest.mark.parametrize("options, words", [
    ({"kind": "pod"}, "'kind' must be"),
    ({"namespace": "Not_A_Namespace"}, "not a Kubernetes namespace"),
    ({"timeout": "soon"}, "'timeout' must be a duration"),
    ({"colour": "blue"}, "unknown option 'colour'"),
    ({"kubeconfig": "/nonexistent/config"}, "no kubeconfig at /nonexistent/config"),
])
def test_bad_options_are_manifest_errors(make, options, words):
    assert words in refused(lambda: make({}, **options), ProviderConfigError)


def test_malformed_references_are_refused_before_any_request(kube, cluster, make, tmp_path):
    provider = make({"KUBECONFIG": kubeconfig(kube, str(tmp_path / "config"), token=cluster)})
    for path in ("Bad_Name", "a/b/c", "-x"):
        refused(lambda path=path: provider.check(sid(path)), ProviderConfigError)
    refused(lambda: provider.check(SecretId("k8s", "db", "7")), ProviderConfigError)
    assert kube.log() == []


def test_errors_name_what_rbac_must_allow(kube, cluster, make, tmp_path):
    provider = make({"KUBECONFIG": kubeconfig(kube, str(tmp_path / "config"), token=cluster)})
    message = refused(lambda: provider.fetch(sid("kube-system/db")), Denied)
    assert "RBAC must allow get secrets in namespace kube-system" in message
    stranger = make({"KUBECONFIG": kubeconfig(kube, str(tmp_path / "c2"), token="not-a-token")})
    assert "401" in refused(lambda: stranger.fetch(sid("db")), Denied)
    assert "does not exist" in refused(lambda: provider.fetch(sid("nope")), NotFound)
    kube.fail(503)
    refused(lambda: provider.fetch(sid("db")), Unavailable)
    kube.fail(429)
    assert refused(lambda: provider.fetch(sid("db")), Unavailable)
    port = free_port()
    down = make(kubeconfig=kubeconfig(KubeFakeAddress(kube, port), str(tmp_path / "c3"), token=cluster))
    assert "could not connect" in refused(lambda: down.fetch(sid("db")), Unavailable)


class KubeFakeAddress:
    """The fake's CA at another (closed) port."""

    def __init__(self, fake, port):
        self.ca_path, self.server = fake.ca_path, f"https://127.0.0.1:{port}"


# --- the watch ---------------------------------------------------------------


class Recorder:
    """A ChangeSink that records what the watch told it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changes, self.losses, self.restores = [], [], 0

    def changed(self, outcomes):
        with self.lock:
            self.changes.append(dict(outcomes))

    def lost(self, sids, reason):
        with self.lock:
            self.losses.append(reason)

    def restored(self, sids):
        with self.lock:
            self.restores += 1

    def seen(self, s, key):
        with self.lock:
            return [c[s].value[key] if hasattr(c[s], "value") else type(c[s]).__name__
                    for c in self.changes if s in c]


@pytest.fixture
def watching(kube, cluster, make, tmp_path):
    provider = make({"KUBECONFIG": kubeconfig(kube, str(tmp_path / "config"), token=cluster)})
    started = []

    def start(*paths):
        sink = Recorder()
        started.append(provider.changes(tuple(sid(p) for p in paths), sink))
        wait_for(lambda: kube.open_watches() >= 1, 5, "the watch to connect")
        return sink

    yield start
    for source in started:
        source.close()


def test_watch_lists_then_streams_changes_and_deletions(kube, watching):
    sink = watching("db")
    assert sink.seen(sid("db"), "password") == [CANARY]                 # the first LIST
    kube.put("db", {"password": NEW})
    wait_for(lambda: sink.seen(sid("db"), "password")[-1:] == [NEW], 5, "the change")
    kube.delete("db")
    wait_for(lambda: sink.seen(sid("db"), "password")[-1:] == ["NotFound"], 5, "the deletion")
    watches = kube.log("watch")
    assert len(watches) == 1 and watches[0].query["fieldSelector"] == "metadata.name=db"
    assert watches[0].query["allowWatchBookmarks"] == "true"
    assert [r.verb for r in kube.log()] == ["list", "watch"]            # no GET, no poll


def test_several_names_share_one_namespace_watch(kube, watching):
    watching("db", "app", "team-a/api")
    wait_for(lambda: kube.open_watches() == 2, 5, "two watches")
    queries = sorted(r.path for r in kube.log("watch"))
    assert queries == ["/api/v1/namespaces/default/secrets", "/api/v1/namespaces/team-a/secrets"]
    narrowed = next(r for r in kube.log("watch") if r.path.endswith("default/secrets"))
    assert "fieldSelector" not in narrowed.query


def test_a_dropped_watch_resumes_from_the_last_bookmark(kube, watching):
    sink = watching("db")
    mark = kube.bookmark()
    time.sleep(0.2)
    assert kube.drop_watches() == 1
    wait_for(lambda: len(kube.log("watch")) == 2, 5, "the reconnect")
    assert kube.log("watch")[1].query["resourceVersion"] == mark
    kube.put("db", {"password": NEW})
    wait_for(lambda: sink.seen(sid("db"), "password")[-1:] == [NEW], 5, "the change after the reconnect")
    assert sink.losses == [] and [r.verb for r in kube.log()] == ["list", "watch", "watch"]


def test_410_gone_relists(kube, watching):
    sink = watching("db")
    kube.fail(500, times=2, verb="watch")      # the reconnects fail while ...
    kube.drop_watches()
    # The cut must land before the change, or the old stream may still carry it.
    wait_for(lambda: kube.open_watches() == 0, 5, "the watch to be cut")
    kube.put("db", {"password": NEW})          # ... the secret changes and the history goes
    kube.compact()
    wait_for(lambda: sink.seen(sid("db"), "password")[-1:] == [NEW], 10, "the relisted value")
    verbs = [r.verb for r in kube.log()]
    assert verbs.count("list") == 2            # the first, and the relist after 410
    assert sink.losses                         # two failed reconnects: polled meanwhile
    wait_for(lambda: sink.restores == 1, 5, "the stream to be back")


def test_a_refused_watch_is_lost_at_once_and_says_what_rbac_must_allow(kube, cluster, make, tmp_path):
    kube.allow("reader", ("get",), "secrets", "default", names=["db"])
    token = kube.add_token("reader")
    provider = make({"KUBECONFIG": kubeconfig(kube, str(tmp_path / "config"), token=token)})
    sink = Recorder()
    source = provider.changes((sid("db"),), sink)
    try:
        wait_for(lambda: sink.losses, 5, "the loss")
        assert "RBAC must allow list secrets in namespace default" in sink.losses[0]
    finally:
        source.close()


# --- the command ---------------------------------------------------------------


def write_manifest(tmp_path, kc, env_lines, settings="retries = 1"):
    path = tmp_path / "secretrun.toml"
    path.write_text(f'version = 1\n[settings]\n{settings}\n[providers.k8s]\ntype = "kubernetes"\n'
                    f'kubeconfig = "{kc}"\n[env]\n{env_lines}\n')
    return path


def test_cli_keys_namespaces_imports_and_binary_files(kube, cluster, secretrun, tmp_path):
    kc = kubeconfig(kube, str(tmp_path / "config"), token=cluster)
    path = write_manifest(tmp_path, kc, 'DB_PASSWORD = "${k8s:db#password}"\n'
                          'TEAM_KEY = "${k8s:team-a/api#key}"\n'
                          'BLOB = { value = "${k8s:db#blob}", file = true }\n'
                          'WHOLE = "${k8s:db}"\n'
                          '[[import]]\nfrom = "${k8s:app}"')
    run = secretrun("-m", str(path), child=True)
    assert run.code == 0, run.stderr
    env = run.child_env
    assert env["DB_PASSWORD"] == CANARY and env["TEAM_KEY"] == "team-key"
    assert env["DATABASE_URL"].endswith(f"{CANARY}@db") and env["ignored"] == "x"
    assert json.loads(env["WHOLE"]) == {"password": CANARY, "user": "app",
                                        "blob": base64.b64encode(BINARY).decode()}   # JSON: binary as base64
    assert env["BLOB"].startswith("/")           # a file only the child can open (bytes: see above)
    assert_no_canary(run.stdout, run.stderr)


@pytest.mark.parametrize("ref, code, words", [
    ("${k8s:kube-system/db#password}", 77, "RBAC must allow get secrets in namespace kube-system"),
    ("${k8s:nope#password}", 1, "Secret default/nope does not exist"),
    ("${k8s:db#nope}", 1, "no field 'nope'"),
    ("${k8s:db#blob}", 65, "use file = true"),
])
def test_cli_exit_codes(kube, cluster, secretrun, tmp_path, ref, code, words):
    path = write_manifest(tmp_path, kubeconfig(kube, str(tmp_path / "config"), token=cluster), f'V = "{ref}"')
    run = secretrun("-m", str(path), child=True)
    assert run.code == code and words in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_cli_retries_a_failing_api_server_then_gives_up_with_69(kube, cluster, secretrun, tmp_path):
    path = write_manifest(tmp_path, kubeconfig(kube, str(tmp_path / "config"), token=cluster),
                          'V = "${k8s:db#password}"')
    kube.fail(503, times=1)
    run = secretrun("-m", str(path), child=True)
    assert run.code == 0 and run.child_env["V"] == CANARY
    kube.fail(503, times=10)
    run = secretrun("-m", str(path), child=True)
    assert run.code == 69 and "(503)" in run.stderr
    assert len(kube.log("get")) == 2 + 2   # one retry allowed each run
    assert_no_canary(run.stdout, run.stderr)


def test_cli_check_reports_versions_without_values(kube, cluster, secretrun, tmp_path):
    path = write_manifest(tmp_path, kubeconfig(kube, str(tmp_path / "config"), token=cluster),
                          'V = "${k8s:db#password}"')
    run = secretrun("check", "-m", str(path), "--format", "json")
    assert run.code == 0, run.stderr
    assert_no_canary(run.stdout, run.stderr)


# --- --watch: pushed, not polled ------------------------------------------------------


DEBOUNCE = 0.2


def test_watch_a_changed_secret_reaches_a_new_command_without_a_poll(kube, cluster, tmp_path):
    kc = kubeconfig(kube, str(tmp_path / "config"), token=cluster)
    provider = f'[providers.k8s]\ntype = "kubernetes"\nkubeconfig = "{kc}"'
    # A poll every minute: only the watch can bring the change within a second.
    text = manifest_text(tmp_path, {"poll_interval": '"60s"', "debounce": f'"{int(DEBOUNCE * 1000)}ms"'},
                         env='SECRET = "${k8s:db#password}"', provider=provider)
    w = Watched(tmp_path, text)
    try:
        (first,) = w.records.wait_starts(1)
        assert first["env"]["SECRET"] == CANARY
        wait_for(lambda: kube.open_watches() == 1, 10, "the watch")
        before = len(kube.log())
        changed_at = time.monotonic()
        kube.put("db", {"password": NEW})
        starts = w.records.wait_starts(2, timeout=10)
        took = time.monotonic() - changed_at
        assert starts[1]["env"]["SECRET"] == NEW
        assert took < 1.0 + DEBOUNCE, f"took {took:.2f}s"
        assert [r.verb for r in kube.log()[before:]] == []      # no GET, LIST or new WATCH: pushed
        assert "following pushed changes instead of polling" in w.stderr
        assert "SECRET (${k8s:db#password}) changed" in w.wait_log("restarted the command")
        assert_no_canary(w.stderr, w.stdout)
        assert_no_canary(w.stderr, w.stdout, canary=NEW)
    finally:
        w.close()


def test_watch_signal_policy_rewrites_the_file(kube, cluster, tmp_path):
    kc = kubeconfig(kube, str(tmp_path / "config"), token=cluster)
    provider = f'[providers.k8s]\ntype = "kubernetes"\nkubeconfig = "{kc}"'
    text = manifest_text(tmp_path, {"poll_interval": '"60s"', "debounce": '"200ms"', "on_change": '"signal"'},
                         env='SECRET = { value = "${k8s:db#password}", file = true }', provider=provider)
    w = Watched(tmp_path, text, ["--reload-file", "SECRET"])
    try:
        (first,) = w.records.wait_starts(1)
        wait_for(lambda: kube.open_watches() == 1, 10, "the watch")
        changed_at = time.monotonic()
        kube.put("db", {"password": NEW})
        w.records.wait_event(first["pid"], "SIGHUP")
        assert time.monotonic() - changed_at < 1.0 + DEBOUNCE
        assert (w.records.dir / f"{first['pid']}.reload.1").read_text() == NEW
        assert [r.verb for r in kube.log() if r.verb != "watch"] == ["get", "list"]   # start, then the watch
        assert_no_canary(w.stderr)
    finally:
        w.close()


def test_watch_falls_back_to_polling_when_the_watch_is_refused(kube, cluster, tmp_path):
    kube.allow("getter", ("get",), "secrets", "default")
    token = kube.add_token("getter")
    kc = kubeconfig(kube, str(tmp_path / "config"), token=token)
    provider = f'[providers.k8s]\ntype = "kubernetes"\nkubeconfig = "{kc}"'
    text = manifest_text(tmp_path, {"poll_interval": '"200ms"', "debounce": '"100ms"'},
                         env='SECRET = "${k8s:db#password}"', provider=provider)
    w = Watched(tmp_path, text)
    try:
        w.records.wait_starts(1)
        w.wait_log("polling instead until it is back")
        assert "RBAC must allow list secrets in namespace default" in w.stderr
        kube.put("db", {"password": NEW})
        starts = w.records.wait_starts(2, timeout=10)
        assert starts[1]["env"]["SECRET"] == NEW
        assert_no_canary(w.stderr)
    finally:
        w.close()


def test_max_stale_counts_an_api_server_that_cannot_be_reached(tmp_path):
    fake = KubeFake().start()
    try:
        token = fake.add_token("app")
        fake.allow("app", ("get", "list", "watch"), "secrets", "default")
        fake.put("db", {"password": CANARY})
        kc = kubeconfig(fake, str(tmp_path / "config"), token=token)
        provider = f'[providers.k8s]\ntype = "kubernetes"\nkubeconfig = "{kc}"\ntimeout = "1s"'
        text = manifest_text(tmp_path, {"poll_interval": '"200ms"', "max_stale": '"1s"', "retries": "0"},
                             env='SECRET = "${k8s:db#password}"', provider=provider)
        w = Watched(tmp_path, text)
        try:
            w.records.wait_starts(1)
            wait_for(lambda: fake.open_watches() == 1, 10, "the watch")
        finally:
            fake.stop()
            fake = None
        try:
            assert w.wait(20) == 69
            assert "lost the change stream" in w.stderr and "unreachable" in w.stderr
            assert_no_canary(w.stderr)
        finally:
            w.close()
    finally:
        if fake is not None:
            fake.stop()


# --- examples/kubernetes ----------------------------------------------------------


def test_the_api_example_works_with_exactly_its_role(kube, tmp_path, secretrun):
    """examples/kubernetes/secrets-api.yaml: its manifest, in the pod layout,
    with the RBAC of its Role and nothing more: reads, and watches."""
    import yaml

    from tests.conftest import ROOT

    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "examples/kubernetes/secrets-api.yaml").read_text())}
    user = "system:serviceaccount:shop:web"
    binding = docs["RoleBinding"]
    assert binding["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    assert binding["subjects"][0]["name"] == docs["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"]
    for rule in docs["Role"]["rules"]:
        for resource in rule["resources"]:
            kube.allow(user, rule["verbs"], resource, "shop", rule.get("resourceNames"))
    kube.put("web-db", {"username": "web", "password": CANARY}, namespace="shop")
    kube.put("web-settings", {"log_level": "info"}, namespace="shop", resource="configmaps")
    kube.put("other", {"password": "not yours"}, namespace="shop")
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(kube.add_token(user))
    (sa / "namespace").write_text("shop")
    (sa / "ca.crt").write_bytes(Path(kube.ca_path).read_bytes())
    text = docs["ConfigMap"]["data"]["secretrun.toml"].replace(
        'type = "kubernetes"', f'type = "kubernetes"\nserviceaccount_dir = "{sa}"')
    (tmp_path / "secretrun.toml").write_text(text)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(kube.port)}
    run = secretrun("-m", str(tmp_path / "secretrun.toml"), child=True, env=env)
    assert run.code == 0, run.stderr
    assert run.child_env["DATABASE_PASSWORD"] == CANARY and run.child_env["LOG_LEVEL"] == "info"
    assert_no_canary(run.stdout, run.stderr)
    # The watch of the one named Secret is allowed by resourceNames.
    ctx = ProviderContext("k8s", "kubernetes", env, str(tmp_path), 5.0)
    provider = KubernetesProvider.from_config(ctx, {"serviceaccount_dir": str(sa)})
    sink = Recorder()
    source = provider.changes((sid("web-db"),), sink)
    try:
        wait_for(lambda: kube.open_watches() == 1, 5, "the watch")
        assert sink.losses == [] and sink.seen(sid("web-db"), "password") == [CANARY]
    finally:
        source.close()
        provider.close()
    # ... and nothing else is.
    refused(lambda: KubernetesProvider.from_config(ctx, {"serviceaccount_dir": str(sa)}).fetch(sid("other")), Denied)


def test_the_external_secrets_example_targets_the_watched_secret():
    import yaml

    from tests.conftest import ROOT

    here = ROOT / "examples/kubernetes"
    eso = {d["kind"]: d for d in yaml.safe_load_all((here / "external-secrets.yaml").read_text())}
    api = {d["kind"]: d for d in yaml.safe_load_all((here / "secrets-api.yaml").read_text())}
    target = eso["ExternalSecret"]["spec"]["target"]["name"]
    assert target in api["Role"]["rules"][0]["resourceNames"]
    assert f"${{k8s:{target}#password}}" in api["ConfigMap"]["data"]["secretrun.toml"]
    assert {d["secretKey"] for d in eso["ExternalSecret"]["spec"]["data"]} == {"username", "password"}


def test_the_leak_matrix_for_this_store(kube, cluster, secretrun, tmp_path):
    """tests/e2e/test_leaks.py's two paths with a Kubernetes Secret holding the
    canary: every success and failure output, every format, and no value."""
    kc = kubeconfig(kube, str(tmp_path / "config"), token=cluster)
    ok = write_manifest(tmp_path, kc, 'PW = "${k8s:db#password}"\nWHOLE = "${k8s:db}"\n'
                        'AS_FILE = { value = "${k8s:db#password}", file = true }', 'timeout = "5s"\nretries = 0')
    runs = [secretrun("-m", str(ok), "--log-level", "debug", child=True),
            secretrun("-m", str(ok), "--log-level", "debug", "--log-format", "json", child=True),
            secretrun("check", "-m", str(ok), "--format", "json", "--log-level", "debug"),
            secretrun("env", "-m", str(ok), "--format", "dotenv")]
    assert all(r.code == 0 for r in runs), [r.stderr for r in runs]
    bad = write_manifest(tmp_path, kc, "\n".join([
        'VALIDATION = { value = "${k8s:db#password}", min_length = 999, pattern = "^x$" }',
        'MISSING_FIELD = "${k8s:db#nope}"',
        'NOT_AN_OBJECT = "${k8s:db#password.deeper}"',
        'MISSING = "${k8s:nope#x}"',
        f'FORBIDDEN = {{ value = "${{k8s:db#password}}", forbid = ["{CANARY}"] }}']), 'timeout = "5s"\nretries = 0')
    for args in (("-m", str(bad), "--", "true"), ("check", "-m", str(bad), "--format", "json"),
                 ("env", "-m", str(bad))):
        run = secretrun(*args)
        assert run.code == 1 and "FORBIDDEN" in run.stdout + run.stderr, run.stderr
        runs.append(run)
    for run in runs:
        assert "Traceback" not in run.stderr
        assert_no_canary(run.stdout, run.stderr)
