"""The ``vault`` provider against a real OpenBao dev server.

One server per session (``bao`` fixture, see ``tests/vault_server.py``),
plus a TLS server and a throwaway server for the outage tests. Provider-level
tests call ``VaultProvider`` directly; the end-to-end ones run the real
``secretrun`` command.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretrun.errors import Denied, InvalidSecret, NotFound, ProviderConfigError, ProviderError, Throttled, Unavailable
from secretrun.providers import load
from secretrun.providers.base import Lease, ProviderContext, SecretId, select_field
from secretrun.providers.vault import K8S_TOKEN_FILE, VaultProvider, _from_status, _proxies
from tests.conftest import CANARY, assert_no_canary
from tests.vault_server import ROLE_ID, BaoServer, Signer, audit_paths, put_kv2, service_account_claims

# --- fixtures ----------------------------------------------------------------------------------


# ``bao``, the session's OpenBao server, is in conftest.py (the examples use it too).


def make(bao, options=None, environ=None, base_dir=".", timeout=5.0) -> VaultProvider:
    """A provider for the session server, by default with the root token in VAULT_TOKEN."""
    env = {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root} if environ is None else environ
    return VaultProvider.from_config(ProviderContext("vault", "vault", env, str(base_dir), timeout), options or {})


def build(environ, options=None, timeout=5.0) -> VaultProvider:
    return VaultProvider.from_config(ProviderContext("vault", "vault", environ, ".", timeout), options or {})


def approle(bao, **extra) -> VaultProvider:
    return make(bao, {"auth": {"method": "approle", "role_id": ROLE_ID, "secret_id": bao.secret_id, **extra}},
                environ={"VAULT_ADDR": bao.url})


def sid(path, version=None, tree=False) -> SecretId:
    return SecretId("vault", path, version, tree)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Audit:
    """Requests the server logged since this object was made."""

    def __init__(self, bao) -> None:
        self.path = bao.audit
        self.start = len(audit_paths(self.path))

    def paths(self):
        return audit_paths(self.path)[self.start:]

    def count(self, path: str) -> int:
        return sum(1 for p in self.paths() if p == path)


# --- reads -----------------------------------------------------------------------------------------


def test_registry_loads_the_provider():
    assert load("vault") is VaultProvider


def test_kv2_latest_is_the_whole_map_with_its_version(bao):
    secret = make(bao).fetch(sid("secret/app/db"))
    assert secret.value["password"] == "v2-password"
    assert secret.version == "2"
    assert secret.lease is None
    assert select_field(secret.value, "nested.user", "x") == "app"


def test_kv2_version_pin(bao):
    secret = make(bao).fetch(sid("secret/app/db", "1"))
    assert secret.value["password"] == "v1-password"
    assert secret.version == "1"


@pytest.mark.parametrize("version", ["abc", "0", "-1"])
def test_kv2_version_must_be_a_number(bao, version):
    with pytest.raises(InvalidSecret, match="is not a KV v2 version"):
        make(bao).fetch(sid("secret/app/db", version))


def test_kv2_missing_version_deleted_and_destroyed(bao):
    provider = make(bao)
    with pytest.raises(NotFound, match=r"version 99 of secret/app/db: no such secret"):
        provider.fetch(sid("secret/app/db", "99"))
    with pytest.raises(NotFound, match="version 2 was deleted"):
        provider.fetch(sid("secret/app/gone"))
    with pytest.raises(NotFound, match="version 1 was destroyed"):
        provider.fetch(sid("secret/app/gone", "1"))


def test_kv1_is_read_without_data_prefix_and_has_no_versions(bao):
    provider = make(bao)
    secret = provider.fetch(sid("kv1/app/db"))
    assert secret.value == {"url": "postgres://kv1/db", "password": "kv1-password"}
    assert secret.version is None
    with pytest.raises(InvalidSecret, match="KV version 1 mount .kv1/.*keeps no versions"):
        provider.fetch(sid("kv1/app/db", "1"))


def test_import_of_a_whole_secret(bao):
    secret = make(bao).fetch(sid("secret/app/config", tree=True))
    assert secret.value == {"LOG_LEVEL": "debug", "FEATURE_X": "on", "RETRIES": 3}


def test_fields_including_a_dotted_key(bao):
    value = make(bao).fetch(sid("secret/app/canary")).value
    assert select_field(value, "tls.crt", "x") == "dotted-key"
    with pytest.raises(NotFound, match="has no field 'nope'"):
        select_field(value, "nope", "secret ${vault:secret/app/canary}")


def test_paths_are_normalised(bao):
    assert make(bao).fetch(sid("/secret//app/db/")).version == "2"


def test_missing_secret_names_path_and_server(bao):
    with pytest.raises(NotFound) as err:
        make(bao).fetch(sid("secret/app/nope"))
    assert "secret/app/nope" in str(err.value) and bao.url in str(err.value)


def test_a_path_under_no_mount_is_not_found(bao):
    with pytest.raises(NotFound, match="nomount/x"):
        make(bao).fetch(sid("nomount/x"))


def test_a_data_prefix_on_kv2_gets_a_hint(bao):
    with pytest.raises(NotFound, match="without 'data/'"):
        make(bao).fetch(sid("secret/data/app/db"))


def test_other_engines_are_read_as_is_with_their_lease(bao):
    provider = make(bao)
    secret = provider.fetch(sid("rabbitmq/creds/app"))
    assert set(secret.value) == {"username", "password"}
    lease = secret.lease
    assert lease.id.startswith("rabbitmq/creds/app/") and lease.renewable and lease.duration == 120
    # The version is a stamp of the lease, and the probe repeats it while the lease lasts.
    assert secret.version.startswith("lease-") and lease.id not in secret.version
    assert provider.probe(sid("rabbitmq/creds/app")) == secret.version

    renewed = provider.renew(lease)
    assert renewed.id == lease.id and renewed.duration > 0
    provider.revoke(lease)
    assert secret.value["username"] in bao.rabbit.users_deleted()
    assert provider.renew(lease) is None          # gone: the caller refetches


def test_a_lease_past_its_duration_is_probed_as_stale(bao):
    provider = make(bao)
    clock = provider.clock = Clock()
    secret = provider.fetch(sid("rabbitmq/creds/app"))
    clock.now += secret.lease.duration + 1
    assert provider.probe(sid("rabbitmq/creds/app")) is None
    provider.revoke(secret.lease)


def test_a_non_renewable_lease_is_not_renewed(bao):
    assert make(bao).renew(Lease("rabbitmq/creds/app/x", 10, False)) is None


def test_write_returns_the_new_version(bao):
    provider = make(bao)
    assert provider.write(sid("secret/app/written"), {"a": "1"}) == "1"
    assert provider.write(sid("secret/app/written"), {"a": "2"}) == "2"
    assert provider.write(sid("kv1/app/written"), {"a": "1"}) is None
    assert provider.fetch(sid("kv1/app/written")).value == {"a": "1"}
    with pytest.raises(InvalidSecret):
        provider.write(sid("secret/app/written"), "not a map")


# --- concurrency -------------------------------------------------------------------------------------


def test_distinct_paths_in_parallel_share_one_mount_lookup_and_one_login(bao):
    root = bao.server.client()
    for i in range(40):
        put_kv2(root, f"app/many/{i}", {"i": str(i)})
    audit = Audit(bao)
    provider = approle(bao)
    with ThreadPoolExecutor(32) as pool:
        secrets = list(pool.map(provider.fetch, [sid(f"secret/app/many/{i}") for i in range(40)]))
    assert [s.value["i"] for s in secrets] == [str(i) for i in range(40)]
    paths = audit.paths()
    assert audit.count("auth/approle/login") == 1
    assert sum(p.startswith("sys/internal/ui/mounts/") for p in paths) == 1
    assert sum(p.startswith("secret/data/app/many/") for p in paths) == 40


def test_a_failed_login_is_shared_by_the_waiting_fetches(bao):
    provider = make(bao, {"auth": {"method": "approle", "role_id": ROLE_ID, "secret_id": "wrong"}},
                     environ={"VAULT_ADDR": bao.url})
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: _outcome(provider.fetch, sid(f"secret/app/x{i}")), range(8)))
    assert all(isinstance(o, Denied) for o in outcomes)


def _outcome(call, *args):
    try:
        return call(*args)
    except ProviderError as exc:
        return exc


# --- auth --------------------------------------------------------------------------------------------


def test_token_from_vault_token_is_consumed(bao):
    provider = make(bao)
    assert provider.fetch(sid("secret/app/db")).version == "2"
    assert provider.consumed_env() == ("VAULT_TOKEN",)


def test_bao_variables_work_too(bao):
    provider = make(bao, environ={"BAO_ADDR": bao.url, "BAO_TOKEN": bao.root})
    assert provider.describe() == bao.url
    assert provider.fetch(sid("secret/app/db")).version == "2"
    assert provider.consumed_env() == ("BAO_TOKEN",)


def test_token_file_relative_to_the_manifest(bao, tmp_path):
    (tmp_path / "token").write_text(bao.root + "\n")
    provider = make(bao, {"auth": {"method": "token", "token_file": "token"}},
                    environ={"VAULT_ADDR": bao.url, "VAULT_TOKEN": "unused"}, base_dir=tmp_path)
    assert provider.fetch(sid("secret/app/db")).version == "2"
    assert provider.consumed_env() == ()


def test_token_from_the_cli_token_helper_file(bao, tmp_path):
    (tmp_path / ".vault-token").write_text(bao.root)
    provider = make(bao, environ={"VAULT_ADDR": bao.url, "HOME": str(tmp_path)})
    assert provider.fetch(sid("secret/app/db")).version == "2"


def test_no_token_anywhere_is_denied(bao, tmp_path):
    provider = make(bao, environ={"VAULT_ADDR": bao.url, "HOME": str(tmp_path)})
    with pytest.raises(Denied, match="no Vault token"):
        provider.fetch(sid("secret/app/db"))


def test_a_wrong_token_is_denied_without_echoing_it(bao):
    provider = make(bao, environ={"VAULT_ADDR": bao.url, "VAULT_TOKEN": CANARY})
    with pytest.raises(Denied) as err:
        provider.fetch(sid("secret/app/db"))
    assert "secret/app/db" in str(err.value) and bao.url in str(err.value)
    assert_no_canary(str(err.value), repr(err.value))


def test_approle_with_secret_id_and_with_files(bao, tmp_path):
    assert approle(bao).fetch(sid("secret/app/db")).version == "2"
    (tmp_path / "role-id").write_text(ROLE_ID + "\n")
    (tmp_path / "secret-id").write_text(bao.secret_id + "\n")
    provider = make(bao, {"auth": {"method": "approle", "role_id_file": "role-id", "secret_id_file": "secret-id",
                                   "mount": "/approle/"}}, environ={"VAULT_ADDR": bao.url}, base_dir=tmp_path)
    assert provider.fetch(sid("secret/app/db")).version == "2"


def test_approle_token_is_limited_by_its_policy(bao):
    with pytest.raises(Denied, match=r"secret/other/forbidden: permission denied \(HTTP 403\)"):
        approle(bao).fetch(sid("secret/other/forbidden"))


def test_a_wrong_secret_id_is_denied_without_echoing_it(bao):
    provider = make(bao, {"auth": {"method": "approle", "role_id": ROLE_ID, "secret_id": CANARY}},
                    environ={"VAULT_ADDR": bao.url})
    with pytest.raises(Denied, match="logging in with approle at auth/approle") as err:
        provider.fetch(sid("secret/app/db"))
    assert_no_canary(str(err.value))


def test_a_missing_secret_id_file_is_denied(bao, tmp_path):
    provider = make(bao, {"auth": {"method": "approle", "role_id": ROLE_ID, "secret_id_file": "absent"}},
                    environ={"VAULT_ADDR": bao.url}, base_dir=tmp_path)
    with pytest.raises(Denied, match="secret_id_file .*absent does not exist"):
        provider.fetch(sid("secret/app/db"))


def test_jwt_login_from_a_file_and_inline(bao, tmp_path):
    token = bao.signer.sign(service_account_claims())
    (tmp_path / "jwt").write_text(token)
    provider = make(bao, {"auth": {"method": "jwt", "role": "app", "jwt_file": str(tmp_path / "jwt")}},
                    environ={"VAULT_ADDR": bao.url})
    assert provider.fetch(sid("secret/app/db")).version == "2"
    inline = make(bao, {"auth": {"method": "jwt", "role": "app", "jwt": token}}, environ={"VAULT_ADDR": bao.url})
    assert inline.fetch(sid("kv1/app/db")).value["url"] == "postgres://kv1/db"


def test_jwt_signed_by_another_key_is_denied(bao, tmp_path):
    (tmp_path / "jwt").write_text(Signer().sign(service_account_claims()))
    provider = make(bao, {"auth": {"method": "jwt", "role": "app", "jwt_file": str(tmp_path / "jwt")}},
                    environ={"VAULT_ADDR": bao.url})
    with pytest.raises(Denied, match="logging in with jwt at auth/jwt"):
        provider.fetch(sid("secret/app/db"))


def test_kubernetes_sends_the_service_account_token_from_its_file(bao, tmp_path):
    token = bao.signer.sign(service_account_claims())
    bao.review.accepted.add(token)
    (tmp_path / "sa-token").write_text(token + "\n")
    provider = make(bao, {"auth": {"method": "kubernetes", "role": "app", "token_file": str(tmp_path / "sa-token")}},
                    environ={"VAULT_ADDR": bao.url})
    audit = Audit(bao)
    assert provider.fetch(sid("secret/app/db")).version == "2"
    assert audit.count("auth/kubernetes/login") == 1
    assert bao.review.requests[-1] == ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", token)


def test_kubernetes_defaults_and_refusal(bao, tmp_path):
    default = make(bao, {"auth": {"method": "kubernetes", "role": "app"}}, environ={"VAULT_ADDR": bao.url})
    assert default.auth.token_file == K8S_TOKEN_FILE and default.auth.mount == "kubernetes"
    (tmp_path / "sa-token").write_text(bao.signer.sign(service_account_claims()))   # not accepted by the API
    provider = make(bao, {"auth": {"method": "kubernetes", "role": "app", "token_file": str(tmp_path / "sa-token")}},
                    environ={"VAULT_ADDR": bao.url})
    with pytest.raises(Denied, match="logging in with kubernetes"):
        provider.fetch(sid("secret/app/db"))


def test_close_revokes_our_own_token_but_not_the_users(bao):
    root = bao.server.client()
    provider = approle(bao)
    provider.fetch(sid("secret/app/db"))
    token = provider._client.adapter.token
    provider.close()
    with pytest.raises(Exception):  # noqa: B017 - hvac raises Forbidden or InvalidRequest by version
        root.auth.token.lookup(token)
    user = make(bao)
    user.fetch(sid("secret/app/db"))
    user.close()
    assert root.auth.token.lookup(bao.root)["data"]["id"] == bao.root


def test_close_keeps_a_token_that_leases_depend_on(bao):
    provider = make(bao, {"auth": {"method": "approle", "role_id": ROLE_ID, "secret_id": bao.secret_id}},
                    environ={"VAULT_ADDR": bao.url})
    secret = provider.fetch(sid("rabbitmq/creds/app"))
    token = provider._client.adapter.token
    provider.close()
    root = bao.server.client()
    assert root.auth.token.lookup(token)["data"]["ttl"] > 0
    root.sys.revoke_lease(secret.lease.id)


# --- token lifetime ------------------------------------------------------------------------------


def test_keepalive_renews_past_half_the_ttl(bao):
    provider = approle(bao)
    clock = provider.clock = Clock()
    provider.fetch(sid("secret/app/db"))
    audit = Audit(bao)
    clock.now += 29
    provider.keepalive()
    assert audit.count("auth/token/renew-self") == 0
    clock.now += 2
    provider.keepalive()
    assert audit.count("auth/token/renew-self") == 1
    clock.now += 29                     # the renewal restarted the count
    provider.keepalive()
    assert audit.count("auth/token/renew-self") == 1
    assert provider.fetch(sid("secret/app/db")).version == "2"


def test_keepalive_logs_in_again_when_the_token_is_revoked(bao):
    provider = approle(bao)
    clock = provider.clock = Clock()
    provider.fetch(sid("secret/app/db"))
    old = provider._client.adapter.token
    bao.server.client().auth.token.revoke(old)
    audit = Audit(bao)
    clock.now += 31
    provider.keepalive()
    assert audit.count("auth/approle/login") == 1
    assert provider._client.adapter.token != old
    assert provider.fetch(sid("secret/app/db")).version == "2"


def test_keepalive_logs_in_again_near_the_max_ttl(bao):
    root = bao.server.client()
    root.write_data("auth/approle/role/short", data={"token_policies": "app", "token_ttl": "2s",
                                                      "token_max_ttl": "2s"})
    role_id = root.read("auth/approle/role/short/role-id")["data"]["role_id"]
    secret_id = root.write_data("auth/approle/role/short/secret-id", data={})["data"]["secret_id"]
    provider = make(bao, {"auth": {"method": "approle", "role_id": role_id, "secret_id": secret_id}},
                    environ={"VAULT_ADDR": bao.url})
    provider.fetch(sid("secret/app/db"))
    first = provider._client.adapter.token
    audit = Audit(bao)
    deadline = time.monotonic() + 10
    while provider._client.adapter.token == first and time.monotonic() < deadline:
        time.sleep(0.1)
        provider.keepalive()
    assert provider._client.adapter.token != first
    assert audit.count("auth/approle/login") == 1


def test_keepalive_with_a_token_that_never_expires_does_nothing(bao):
    provider = make(bao)
    clock = provider.clock = Clock()
    provider.fetch(sid("secret/app/db"))
    audit = Audit(bao)
    for _ in range(3):
        clock.now += 10_000
        provider.keepalive()
    assert audit.paths() == ["auth/token/lookup-self"]


def test_keepalive_reports_an_outage_as_unavailable(tmp_path):
    with BaoServer(tmp_path / "keepalive") as server:
        token = server.client().auth.token.create(ttl="60s")["auth"]["client_token"]
        provider = build({"VAULT_ADDR": server.url, "VAULT_TOKEN": token}, timeout=2.0)
        clock = provider.clock = Clock()
        provider.keepalive()                        # learns the TTL
        server.stop()
        clock.now += 31
        with pytest.raises(Unavailable, match="renewing the token: cannot connect"):
            provider.keepalive()


def test_keepalive_takes_a_rotated_token_from_its_file(bao, tmp_path):
    root = bao.server.client()

    def short_token():
        return root.auth.token.create(policies=["app"], ttl="60s", renewable=False)["auth"]["client_token"]

    path = tmp_path / "token"
    path.write_text(short_token())
    provider = make(bao, {"auth": {"token_file": str(path)}}, environ={"VAULT_ADDR": bao.url})
    clock = provider.clock = Clock()
    provider.fetch(sid("secret/app/db"))
    provider.keepalive()                            # learns the TTL
    clock.now += 31
    with pytest.raises(Denied, match="can no longer be renewed"):
        provider.keepalive()                        # not renewable, and the file holds the same token
    path.write_text(short_token())                  # as Vault Agent's sink would
    provider.keepalive()
    assert provider._client.adapter.token == path.read_text()
    assert provider.fetch(sid("secret/app/db")).version == "2"


# --- change detection -------------------------------------------------------------------------------


def test_probe_follows_kv2_current_version_and_never_holds_the_value(bao):
    root = bao.server.client()
    put_kv2(root, "app/rotating", {"value": CANARY})
    provider = approle(bao)
    fetched = provider.fetch(sid("secret/app/rotating"))
    assert provider.probe(sid("secret/app/rotating")) == fetched.version == "1"
    audit = Audit(bao)
    put_kv2(root, "app/rotating", {"value": CANARY + "-2"})
    assert provider.probe(sid("secret/app/rotating")) == "2"
    assert audit.paths()[-1] == "secret/metadata/app/rotating"
    assert_no_canary(provider.probe(sid("secret/app/rotating")))


def test_probe_of_a_pinned_version_costs_nothing(bao):
    provider = make(bao)
    provider.fetch(sid("secret/app/db", "1"))
    audit = Audit(bao)
    assert provider.probe(sid("secret/app/db", "1")) == "1"
    assert audit.paths() == []


def test_probe_falls_back_to_refetching(bao):
    root = bao.server.client()
    put_kv2(root, "plain/x", {"v": "1"})            # the app policy grants data/, not metadata/
    provider = approle(bao)
    assert provider.probe(sid("kv1/app/db")) is None
    assert provider.probe(sid("secret/plain/x")) is None
    audit = Audit(bao)
    assert provider.probe(sid("secret/plain/x")) is None
    assert audit.paths() == []                      # the refusal is remembered


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status,cls,retryable", [
    (400, InvalidSecret, False), (401, Denied, False), (403, Denied, False), (404, NotFound, False),
    (405, InvalidSecret, False), (418, InvalidSecret, False), (412, Unavailable, True),
    (429, Throttled, True), (500, Unavailable, True), (502, Unavailable, True), (503, Unavailable, True),
    (504, Unavailable, True), (599, Unavailable, True),
])
def test_the_status_table(status, cls, retryable):
    error = _from_status(status, {"errors": [CANARY]}, "reading a/b", "http://vault:8200")
    assert type(error) is cls and error.retryable is retryable
    assert "reading a/b" in str(error) and "http://vault:8200" in str(error)
    assert_no_canary(str(error))


def test_sealed_is_named():
    error = _from_status(503, {"errors": ["Vault is sealed"]}, "reading a", "http://v")
    assert isinstance(error, Unavailable) and "sealed" in str(error)


def test_rate_limited_is_throttled(bao):
    root = bao.server.client()
    root.sys.enable_secrets_engine("kv", path="limited", options={"version": "2"})
    put_kv2(root, "x", {"v": "1"}, mount="limited")
    # A mount of its own: quotas match mounts, and no other test reads this one.
    root.write_data("sys/quotas/config", data={"enable_rate_limit_response_headers": True})
    root.write_data("sys/quotas/rate-limit/test-limit", data={"path": "limited/", "rate": 1, "interval": "1m"})
    try:
        provider = make(bao)
        errors = []
        for _ in range(5):
            try:
                provider.fetch(sid("limited/x"))
            except Unavailable as exc:
                errors.append(exc)
                break
        assert errors and "rate limit exceeded (HTTP 429)" in str(errors[0]) and isinstance(errors[0], Throttled)
        assert errors[0].retry_after and errors[0].retry_after > 0     # Vault's Retry-After header
    finally:
        root.delete("sys/quotas/rate-limit/test-limit")
        root.write_data("sys/quotas/config", data={"enable_rate_limit_response_headers": False})


def test_sealed_then_stopped_server(tmp_path):
    with BaoServer(tmp_path / "outage") as server:
        environ = {"VAULT_ADDR": server.url, "VAULT_TOKEN": server.token}
        provider = build(environ, timeout=2.0)
        with pytest.raises(NotFound):
            provider.fetch(sid("secret/app/x"))
        server.client().sys.seal()
        with pytest.raises(Unavailable, match="sealed"):
            provider.fetch(sid("secret/app/x"))
        server.stop()
        with pytest.raises(Unavailable) as err:
            provider.fetch(sid("secret/app/x"))
    assert "connection refused" in str(err.value) and server.url in str(err.value)


def test_a_server_that_does_not_answer_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)                  # accepts connections, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        provider = build({"VAULT_TOKEN": "t"}, {"address": url, "timeout": "300ms"}, timeout=10.0)
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"no answer within 0.3s from " + url):
            provider.fetch(sid("secret/app/x"))
        assert time.monotonic() - started < 5


# --- TLS and namespaces -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_bao(tmp_path_factory):
    with BaoServer(tmp_path_factory.mktemp("bao-tls"), tls=True) as server:
        put_kv2(server.client(), "app/db", {"password": "tls-password"})
        yield server


def test_tls_with_ca_cert_option_and_variable(tls_bao):
    environ = {"VAULT_ADDR": tls_bao.url, "VAULT_TOKEN": tls_bao.token}
    provider = build(environ, {"ca_cert": tls_bao.ca_cert})
    assert provider.fetch(sid("secret/app/db")).value["password"] == "tls-password"
    provider = build(dict(environ, VAULT_CACERT=tls_bao.ca_cert))
    assert provider.fetch(sid("secret/app/db")).version == "1"


def test_tls_without_the_ca_fails_and_is_not_retried(tls_bao):
    provider = build({"VAULT_ADDR": tls_bao.url, "VAULT_TOKEN": tls_bao.token})
    with pytest.raises(Unavailable, match="certificate verify failed .*ca_cert") as err:
        provider.fetch(sid("secret/app/db"))
    assert err.value.retryable is False


def test_tls_skip_verify(tls_bao):
    environ = {"VAULT_ADDR": tls_bao.url, "VAULT_TOKEN": tls_bao.token}
    assert build(environ, {"tls_skip_verify": True}).fetch(sid("secret/app/db")).version == "1"
    assert build(dict(environ, VAULT_SKIP_VERIFY="true")).fetch(sid("secret/app/db")).version == "1"


def test_namespace_option_and_variable(bao):
    root = bao.server.client()
    root.write_data("sys/namespaces/team", data={})
    bao.server.client(namespace="team").sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    put_kv2(bao.server.client(namespace="team"), "app/db", {"where": "team"}, mount="kv")
    provider = make(bao, {"namespace": "team"})
    assert provider.fetch(sid("kv/app/db")).value == {"where": "team"}
    assert "namespace team" in provider.describe()
    provider = make(bao, environ={"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root, "VAULT_NAMESPACE": "team"})
    assert provider.fetch(sid("kv/app/db")).version == "1"
    with pytest.raises(NotFound):
        make(bao).fetch(sid("kv/app/db"))


# --- options -------------------------------------------------------------------------------------


def test_every_option_problem_is_reported_at_once():
    ctx = ProviderContext("vault", "vault", {}, ".", 5.0)
    with pytest.raises(ProviderConfigError) as err:
        VaultProvider.from_config(ctx, {"adress": "x", "address": "vault:8200", "timeout": "soon",
                                        "auth": {"method": "approle", "secret_id": "s", "secret_id_file": "f",
                                                 "role": "r"}})
    text = str(err.value)
    for part in ("unknown option 'adress'", "must start with http", "'timeout' must be",
                 "'auth.secret_id' and 'auth.secret_id_file' cannot both be set", "needs 'auth.role_id'",
                 "unknown option 'auth.role' for method 'approle'"):
        assert part in text


@pytest.mark.parametrize("auth,message", [
    ({"method": "ldap"}, "'auth.method' must be one of token, approle, kubernetes, jwt"),
    ({"method": "kubernetes"}, "needs 'auth.role'"),
    ({"method": "jwt", "role": "r"}, "needs 'auth.jwt' or 'auth.jwt_file'"),
    ({"token": "a", "token_file": "b"}, "cannot both be set"),
    ({"method": "token", "secret_id": "s"}, "unknown option 'auth.secret_id' for method 'token'"),
    ({"method": "jwt", "jwt_file": 3}, "'auth.jwt_file' must be a non-empty string"),
])
def test_auth_validation(auth, message):
    with pytest.raises(ProviderConfigError, match=message):
        VaultProvider.from_config(ProviderContext("vault", "vault", {}, ".", 5.0), {"auth": auth})


def test_certificate_files_must_exist(tmp_path):
    with pytest.raises(ProviderConfigError) as err:
        build({"VAULT_CACERT": str(tmp_path / "ca.pem")}, {"client_cert": "c.pem", "client_key": "k.pem"})
    for what in ("'ca_cert'", "'client_cert'", "'client_key'"):
        assert what in str(err.value)


def test_address_defaults_and_timeouts():
    assert build({}).address == "https://127.0.0.1:8200"
    assert build({"BAO_ADDR": "http://bao:8200"}).address == "http://bao:8200"
    assert build({"VAULT_ADDR": "http://vault:8200/", "BAO_ADDR": "http://bao:8200"}).address == "http://vault:8200"
    assert build({"VAULT_ADDR": "http://vault:8200"}, {"address": "https://x:1"}).address == "https://x:1"
    assert build({}, timeout=7.0).timeout == 7.0
    assert build({}, {"timeout": "250ms"}).timeout == 0.25
    assert build({}, {"timeout": 3}).timeout == 3


def test_proxies_come_from_the_given_environment():
    assert _proxies({}, "http://vault:8200") == {}
    assert _proxies({"HTTPS_PROXY": "http://p:3128"}, "https://vault:8200") == {"https": "http://p:3128"}
    assert _proxies({"https_proxy": "http://p:3128", "NO_PROXY": "vault"}, "https://vault:8200") == {}
    assert _proxies({"VAULT_HTTP_PROXY": "http://v:1", "NO_PROXY": "vault"}, "https://vault:8200") == \
        {"http": "http://v:1", "https": "http://v:1"}


# --- end to end, through the secretrun command ------------------------------------------------------


def _manifest(manifest, bao, env_block: str, extra: str = "") -> Path:
    return manifest(f"""
        version = 1

        [settings]
        retries = 0

        [providers.vault]
        type = "vault"
        {extra}

        [env]
        {env_block}
        """)


def test_end_to_end_run(bao, manifest, secretrun):
    path = manifest("""
        version = 1

        [providers.vault]
        type = "vault"

        [env]
        DATABASE_URL = "${vault:secret/app/db#url}"
        DB_PASSWORD = "${vault:secret/app/db#password}"
        OLD_PASSWORD = "${vault:secret/app/db?version=1#password}"
        DB_USER = "${vault:secret/app/db#nested.user}"
        DSN = "postgres://${vault:secret/app/db#nested.user}:${vault:secret/app/db#password}@db/app"
        KV1_URL = "${vault:kv1/app/db#url}"
        TLS_CRT = "${vault:secret/app/canary#tls.crt}"
        CANARY_VALUE = "${vault:secret/app/canary#value}"
        KV1_CANARY = "${vault:kv1/app/canary#value}"

        [[import]]
        from = "${vault:secret/app/config}"
        prefix = "APP_"
        """)
    audit = Audit(bao)
    run = secretrun("-m", str(path), child=True, env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root})
    assert run.code == 0, run.stderr
    env = run.child_env
    assert env["DATABASE_URL"] == "postgres://db.internal/app"
    assert env["DB_PASSWORD"] == "v2-password" and env["OLD_PASSWORD"] == "v1-password"
    assert env["DB_USER"] == "app" and env["DSN"] == "postgres://app:v2-password@db/app"
    assert env["KV1_URL"] == "postgres://kv1/db" and env["TLS_CRT"] == "dotted-key"
    assert env["CANARY_VALUE"] == CANARY == env["KV1_CANARY"]
    assert env["APP_LOG_LEVEL"] == "debug" and env["APP_RETRIES"] == "3"
    assert "VAULT_TOKEN" not in env                   # consumed for our own login
    assert env["VAULT_ADDR"] == bao.url
    assert_no_canary(run.stdout, run.stderr)
    # One read per secret, however many variables use it; one mount lookup per mount.
    assert audit.count("secret/data/app/db") == 2     # latest and version 1
    assert audit.count("secret/data/app/canary") == 1
    assert sum(p.startswith("sys/internal/ui/mounts/") for p in audit.paths()) == 2


def test_end_to_end_approle_from_templates(bao, manifest, secretrun, tmp_path):
    (tmp_path / "secret-id").write_text(bao.secret_id)
    path = _manifest(manifest, bao, 'DB_PASSWORD = "${vault:secret/app/db#password}"',
                     extra='auth = { method = "approle", role_id = "${env:ROLE_ID}", secret_id_file = "secret-id" }\n'
                           f'        address = "{bao.url}"')
    run = secretrun("-m", str(path), child=True, env={"ROLE_ID": ROLE_ID})
    assert run.code == 0, run.stderr
    assert run.child_env["DB_PASSWORD"] == "v2-password"


def test_end_to_end_errors_name_variable_reference_and_server(bao, manifest, secretrun):
    path = _manifest(manifest, bao, """
        MISSING = "${vault:secret/app/nope#url}"
        NO_FIELD = "${vault:secret/app/canary#nope}"
        FORBIDDEN = "${vault:secret/other/forbidden#value}"
        FINE = "${vault:secret/app/canary#value}"
        """, extra='auth = { method = "approle", role_id = "${env:ROLE_ID}", secret_id = "${env:SECRET_ID}" }')
    run = secretrun("-m", str(path), child=True,
                    env={"VAULT_ADDR": bao.url, "ROLE_ID": ROLE_ID, "SECRET_ID": bao.secret_id})
    assert run.code == 77, run.stderr               # denied ranks before missing
    for part in ("MISSING", "secret/app/nope", "NO_FIELD", "'nope'", "FORBIDDEN", "secret/other/forbidden",
                 "permission denied", bao.url):
        assert part in run.stderr
    assert_no_canary(run.stdout, run.stderr)

    path = _manifest(manifest, bao, 'MISSING = "${vault:secret/app/nope#url}"')
    run = secretrun("-m", str(path), child=True, env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root})
    assert run.code == 1 and "secret/app/nope" in run.stderr


def test_end_to_end_store_down_exits_69(manifest, secretrun):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # closed again before use: connection refused
    path = manifest("""
        version = 1
        [settings]
        retries = 1
        [providers.vault]
        type = "vault"
        [env]
        A = "${vault:secret/app/db#url}"
        """)
    run = secretrun("-m", str(path), child=True, env={"VAULT_ADDR": f"http://127.0.0.1:{port}", "VAULT_TOKEN": "t"})
    assert run.code == 69 and "connection refused" in run.stderr and f"127.0.0.1:{port}" in run.stderr


def test_end_to_end_check_and_env_show_no_values(bao, manifest, secretrun):
    path = _manifest(manifest, bao, """
        CANARY_VALUE = "${vault:secret/app/canary#value}"
        DB_PASSWORD = "${vault:secret/app/db?version=1#password}"
        """)
    env = {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root}
    run = secretrun("check", "-m", str(path), "--format", "json", env=env)
    assert run.code == 0, run.stderr
    rows = {r["variable"]: r for r in json.loads(run.stdout)["variables"]}
    assert rows["CANARY_VALUE"]["status"] == "ok" and rows["CANARY_VALUE"]["version"] == "1"
    assert rows["DB_PASSWORD"]["version"] == "1"
    run2 = secretrun("env", "-m", str(path), "--format", "json", env=env)
    assert run2.code == 0 and set(json.loads(run2.stdout)) == {"CANARY_VALUE", "DB_PASSWORD"}
    assert_no_canary(run.stdout, run.stderr, run2.stdout, run2.stderr)


def test_debug_logs_show_no_values(bao, manifest, secretrun):
    path = _manifest(manifest, bao, 'CANARY_VALUE = "${vault:secret/app/canary#value}"')
    run = secretrun("--log-level", "debug", "-m", str(path), child=True,
                    env={"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.root})
    assert run.code == 0, run.stderr
    assert "vault mount learnt" in run.stderr
    assert_no_canary(run.stdout, run.stderr)
