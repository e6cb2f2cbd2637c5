"""Rotation end to end with real files, the real CLI and a real child, and
against a real OpenBao (the poller's policy on a fake clock is
tests/unit/test_poller.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import Watched, manifest_text, rotate, wait_for

NEW = CANARY + "-rotated"


# --- end to end: real files, the real CLI, a real child --------------------------


@pytest.fixture
def watched(tmp_path):
    made = []

    def start(*args, **kwargs):
        w = Watched(tmp_path, *args, **kwargs)
        made.append(w)
        return w

    yield start
    for w in made:
        w.close()


def test_file_rotation_restarts_the_child_with_the_new_value(tmp_path, secrets_dir, watched):
    w = watched(manifest_text(secrets_dir))
    (first,) = w.records.wait_starts(1)
    assert first["env"]["SECRET"] == CANARY
    rotate(secrets_dir / "secret", NEW)
    starts = w.records.wait_starts(2)
    assert starts[1]["env"]["SECRET"] == NEW
    assert w.records.events(first["pid"]) == ["SIGTERM"]
    log = w.wait_log("restarted the command")
    assert "SECRET (${files:secret}) changed" in log
    w.send(signal.SIGTERM)
    assert w.wait() == 128 + signal.SIGTERM
    assert_no_canary(w.stderr, w.stdout)
    assert_no_canary(w.stderr, w.stdout, canary=NEW)


def test_unchanged_values_cause_no_restart_over_many_polls(tmp_path, secrets_dir, watched):
    status = tmp_path / "status.json"
    w = watched(manifest_text(secrets_dir, {"poll_interval": '"20ms"', "status_file": f'"{status}"'}))
    w.records.wait_starts(1)

    def polls():
        try:
            return json.loads(status.read_text()).get("polls", 0)
        except (OSError, ValueError):
            return 0

    wait_for(lambda: polls() >= 40, 15, "40 polls")
    assert len(w.records.starts()) == 1
    data = json.loads(status.read_text())
    assert data["store_healthy"] is True and data["restarts"] == 0 and data["child_pid"]
    assert "restarted" not in w.stderr and "change seen" not in w.stderr
    assert_no_canary(status.read_text(), w.stderr)


def test_kubernetes_data_symlink_swap(tmp_path, watched):
    """A Kubernetes secret volume: files are links through ``..data``, which
    the kubelet swaps atomically to a new timestamped directory."""
    vol = tmp_path / "vol"
    (vol / "..2026_01_01_00_00_00.1").mkdir(parents=True)
    (vol / "..2026_01_01_00_00_00.1" / "secret").write_text(CANARY)
    os.symlink("..2026_01_01_00_00_00.1", vol / "..data")
    os.symlink("..data/secret", vol / "secret")
    w = watched(manifest_text(vol))
    (first,) = w.records.wait_starts(1)
    assert first["env"]["SECRET"] == CANARY
    (vol / "..2026_01_02_00_00_00.2").mkdir()
    (vol / "..2026_01_02_00_00_00.2" / "secret").write_text(NEW)
    os.symlink("..2026_01_02_00_00_00.2", vol / "..data_tmp")
    os.replace(vol / "..data_tmp", vol / "..data")
    starts = w.records.wait_starts(2)
    assert starts[1]["env"]["SECRET"] == NEW
    assert_no_canary(w.stderr)


def test_signal_policy_rewrites_the_file_and_keeps_the_pid(tmp_path, secrets_dir, watched):
    w = watched(manifest_text(secrets_dir, {"on_change": '"signal"'},
                              env='SECRET = { value = "${files:secret}", file = true }'),
                ["--reload-file", "SECRET"])
    (first,) = w.records.wait_starts(1)
    path = first["env"]["SECRET"]
    assert path.startswith("/") and Path(path).read_text() == CANARY
    assert (Path(path).stat().st_mode & 0o777) == 0o600
    rotate(secrets_dir / "secret", NEW)
    w.records.wait_event(first["pid"], "SIGHUP")
    # The child records the signal, then copies the file: wait for the copy.
    reload = w.records.dir / f"{first['pid']}.reload.1"
    wait_for(reload.exists, what="the child's copy of the rewritten file")
    assert reload.read_text() == NEW
    assert len(w.records.starts()) == 1 and w.alive()
    w.wait_log("files rewritten, sent SIGHUP")
    assert_no_canary(w.stderr)
    assert_no_canary(w.stderr, canary=NEW)


def test_on_change_exit_stops_the_child_and_exits_75(tmp_path, secrets_dir, watched):
    w = watched(manifest_text(secrets_dir, {"on_change": '"exit"'}))
    (first,) = w.records.wait_starts(1)
    rotate(secrets_dir / "secret", NEW)
    assert w.wait() == 75
    assert w.records.events(first["pid"]) == ["SIGTERM"] and len(w.records.starts()) == 1
    assert "on_change = exit" in w.stderr


def test_the_store_going_away_and_coming_back_leaves_the_child_alone(tmp_path, secrets_dir, watched):
    """The store (a secrets directory) gone, so every refresh fails, then
    back: one warning, no restart, one recovery line; a real change after
    that still restarts."""
    w = watched(manifest_text(secrets_dir, {"poll_interval": '"50ms"'}))
    (first,) = w.records.wait_starts(1)
    os.rename(secrets_dir, tmp_path / "away")
    w.wait_log("keeps running on its last good values")
    w.wait_log("refresh still failing", count=2)
    os.rename(tmp_path / "away", secrets_dir)
    w.wait_log("the stores answer again")
    assert w.stderr.count("keeps running on its last good values") == 1
    assert len(w.records.starts()) == 1 and w.records.events(first["pid"]) == []
    rotate(secrets_dir / "secret", NEW)
    assert w.records.wait_starts(2)[1]["env"]["SECRET"] == NEW
    assert_no_canary(w.stderr)


def test_max_stale_stops_the_child_and_exits_69(tmp_path, secrets_dir, watched):
    w = watched(manifest_text(secrets_dir, {"poll_interval": '"50ms"', "max_stale": '"300ms"'}))
    (first,) = w.records.wait_starts(1)
    (secrets_dir / "secret").unlink()
    assert w.wait() == 69
    assert w.records.events(first["pid"]) == ["SIGTERM"]
    assert "max_stale" in w.stderr


def test_dotenv_rotation_restarts_the_child(tmp_path, watched):
    env_file = tmp_path / "store.env"
    env_file.write_text(f"SECRET={CANARY}\n")
    provider = f'[providers.store]\ntype = "dotenv"\npath = "{env_file}"'
    w = watched(manifest_text(tmp_path, {"poll_interval": '"50ms"'}, env='SECRET = "${store:SECRET}"',
                              provider=provider))
    w.records.wait_starts(1)
    env_file.write_text(f"SECRET={NEW}\n")
    assert w.records.wait_starts(2, timeout=3)[1]["env"]["SECRET"] == NEW


# --- end to end against a real OpenBao server -------------------------------------


def vault_manifest(url: str, settings: dict = None) -> str:
    provider = f'[providers.vault]\ntype = "vault"\naddress = "{url}"'
    return manifest_text(Path("."), settings, env='SECRET = "${vault:secret/app#value}"', provider=provider)


@pytest.fixture
def openbao(tmp_path):
    from tests.vault_server import BaoServer

    server = BaoServer(tmp_path / "bao").start()
    yield server
    server.stop()


def test_vault_rotation_restarts_the_child_with_the_new_value(tmp_path, openbao, watched):
    from tests.vault_server import put_kv2

    client = openbao.client()
    put_kv2(client, "app", {"value": CANARY})
    status = tmp_path / "status.json"
    w = watched(vault_manifest(openbao.url, {"poll_interval": '"100ms"', "status_file": f'"{status}"'}),
                env={"VAULT_TOKEN": openbao.token})
    (first,) = w.records.wait_starts(1)
    assert first["env"]["SECRET"] == CANARY and "VAULT_TOKEN" not in first["env"]

    def polls():
        try:
            return json.loads(status.read_text()).get("polls", 0)
        except (OSError, ValueError):
            return 0

    # A new version holding the same value is no change: polls go on, no restart.
    put_kv2(client, "app", {"value": CANARY})
    seen = polls()
    wait_for(lambda: polls() >= seen + 5, 10, "five more polls")
    assert len(w.records.starts()) == 1
    put_kv2(client, "app", {"value": NEW})
    starts = w.records.wait_starts(2)
    assert starts[1]["env"]["SECRET"] == NEW
    assert w.records.events(first["pid"]) == ["SIGTERM"]
    assert "SECRET (${vault:secret/app#value}) changed" in w.wait_log("restarted the command")
    w.send(signal.SIGTERM)
    assert w.wait() == 143
    assert len(w.records.starts()) == 2
    assert_no_canary(w.stderr, w.stdout)
    assert_no_canary(w.stderr, w.stdout, canary=NEW)


def test_openbao_stopped_and_started_again_while_the_child_keeps_running(tmp_path, openbao, watched):
    from tests.vault_server import put_kv2

    put_kv2(openbao.client(), "app", {"value": CANARY})
    w = watched(vault_manifest(openbao.url, {"poll_interval": '"100ms"'}),
                env={"VAULT_TOKEN": openbao.token})
    (first,) = w.records.wait_starts(1)
    openbao.stop()
    w.wait_log("keeps running on its last good values")
    w.wait_log("refresh still failing", count=2)
    # A dev server starts empty: the same token and port, the same value put back.
    openbao.start()
    put_kv2(openbao.client(), "app", {"value": CANARY})
    w.wait_log("the stores answer again", timeout=20)
    assert w.stderr.count("keeps running on its last good values") == 1
    assert len(w.records.starts()) == 1 and w.records.events(first["pid"]) == []
    assert w.alive()
    assert_no_canary(w.stderr)


def test_sd_notify_under_watch(tmp_path, secrets_dir, watched):
    """Type=notify: READY once the child runs, RELOADING/READY around a restart,
    STOPPING on shutdown, WATCHDOG pings; the child never sees NOTIFY_SOCKET."""
    import socket as socketlib

    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    sock.bind(address)
    sock.setblocking(False)
    messages = []

    def drain():
        while True:
            try:
                data = sock.recv(4096).decode()
            except OSError:
                return messages
            messages.append(dict(line.split("=", 1) for line in data.splitlines()))

    def seen(key):
        return [m for m in drain() if key in m]

    try:
        w = watched(manifest_text(secrets_dir), env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
        (first,) = w.records.wait_starts(1)
        assert "NOTIFY_SOCKET" not in first["env"]
        wait_for(lambda: seen("READY"), what="READY=1")
        assert seen("READY")[0]["MAINPID"] == str(w.pid)
        wait_for(lambda: len(seen("WATCHDOG")) >= 2, what="watchdog pings")
        rotate(secrets_dir / "secret", NEW)
        w.records.wait_starts(2)
        wait_for(lambda: seen("RELOADING") and len(seen("READY")) >= 2, what="RELOADING then READY")
        w.send(signal.SIGTERM)
        w.wait()
        wait_for(lambda: seen("STOPPING"), what="STOPPING=1")
        order = [next(k for k in ("READY", "RELOADING", "STOPPING") if k in m) for m in messages
                 if any(k in m for k in ("READY", "RELOADING", "STOPPING"))]
        assert order[:3] == ["READY", "RELOADING", "READY"] and order[-1] == "STOPPING"
    finally:
        sock.close()
