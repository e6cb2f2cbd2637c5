"""Polling and rotation: the poller's policy replayed on a fake clock (no
sleeps), then rotation end to end with real files and a real child."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from secretrun.watch import Poller, changed_variables
from tests.conftest import CANARY, assert_no_canary
from tests.watch_fixtures import FakeClock, FakeLog, Watched, manifest_text, outage, rendered, rotate, settings, wait_for

NEW = CANARY + "-rotated"


def make(script_settings=None, first=None, rand=0.5):
    clock, wall, log = FakeClock(), FakeClock(5_000_000.0), FakeLog()
    cfg = settings(**(script_settings or {}))
    first = first or rendered({"DB": CANARY, "API": "api-value-1"})
    poller = Poller(cfg, first, log=log, clock=clock, wallclock=wall, rand=lambda: rand)
    return poller, clock, wall, log


def poll(poller, clock, wall, outcome):
    """Advance to the next deadline and feed one refresh outcome (or return
    the stale decision, when that deadline comes first)."""
    step = max(0.0, poller.next_deadline() - clock.now)
    clock.advance(step)
    wall.advance(step)
    if not poller.poll_due(clock.now):
        return poller.check_stale(clock.now)
    poller.begin()
    if isinstance(outcome, BaseException):
        return poller.result(error=outcome)
    return poller.result(outcome)


# --- the poller, on a fake clock -----------------------------------------------


def test_unchanged_values_never_decide_anything_over_many_polls():
    poller, clock, wall, log = make()
    same = rendered({"DB": CANARY, "API": "api-value-1"})
    start = clock.now
    for _ in range(1000):
        assert poll(poller, clock, wall, same) is None
    # 1000 polls at 1 s ±10%: the mean interval is the setting.
    assert 990 < clock.now - start < 1010
    assert poller.stats["polls"] == 1000 and not log.at("warning")


def test_jitter_stays_within_ten_percent():
    for r in (0.0, 1.0):
        poller, clock, *_ = make(rand=r)
        assert poller.next_deadline() - clock.now == pytest.approx(0.9 if r == 0 else 1.1)


def test_a_change_is_acted_on_once_it_settles():
    poller, clock, wall, log = make()
    new = rendered({"DB": NEW, "API": "api-value-1"})
    assert poll(poller, clock, wall, new) is None          # seen: wait for it to settle
    assert poller.next_deadline() - clock.now == pytest.approx(0.1)   # debounce, not a full interval
    decision = poll(poller, clock, wall, new)
    assert decision.action == "restart" and decision.changed == ("DB",)
    assert "DB (${test:db}) changed" == decision.reason
    assert_no_canary(decision.reason, log.text)
    assert_no_canary(decision.reason, log.text, canary=NEW)


def test_a_burst_of_rotations_gives_one_decision_with_every_name():
    poller, clock, wall, _ = make()
    half = rendered({"DB": NEW, "API": "api-value-1"})
    full = rendered({"DB": NEW, "API": "api-value-2"})
    assert poll(poller, clock, wall, half) is None
    assert poll(poller, clock, wall, full) is None     # still moving: wait again
    decision = poll(poller, clock, wall, full)
    assert decision.changed == ("API", "DB")
    assert poll(poller, clock, wall, full) is None     # nothing more after that
    poller.committed(full)
    for _ in range(5):
        assert poll(poller, clock, wall, full) is None


def test_a_store_that_keeps_changing_is_acted_on_within_one_interval():
    poller, clock, wall, _ = make()
    first_seen = None
    for i in range(100):
        decision = poll(poller, clock, wall, rendered({"DB": f"value-{i:04d}", "API": "api-value-1"}))
        if first_seen is None:
            first_seen = clock.now
        if decision is not None:
            break
    assert decision is not None and clock.now - first_seen <= 1.0 + 0.11


def test_a_change_that_flips_back_before_settling_does_nothing():
    poller, clock, wall, _ = make()
    assert poll(poller, clock, wall, rendered({"DB": NEW, "API": "api-value-1"})) is None
    assert poll(poller, clock, wall, rendered({"DB": CANARY, "API": "api-value-1"})) is None
    assert poll(poller, clock, wall, rendered({"DB": CANARY, "API": "api-value-1"})) is None


def settle(poller, clock, wall, new):
    assert poll(poller, clock, wall, new) is None
    return poll(poller, clock, wall, new)


def test_per_variable_policies_the_strongest_wins():
    first = rendered({"DB": CANARY, "API": "a1", "TLS": "/run/x/TLS"}, files={"TLS": b"k1"},
                     on_change={"API": "ignore", "TLS": "signal"})
    poller, clock, wall, log = make(first=first)
    only_api = first._replace(env={**first.env, "API": "a2"})
    decision = settle(poller, clock, wall, only_api)
    assert decision.action == "ignore" and decision.changed == ("API",)
    # ignored: no decision again for the same values
    assert poll(poller, clock, wall, only_api) is None
    tls = only_api._replace(files={"TLS": b"k2"})
    decision = settle(poller, clock, wall, tls)
    assert decision.action == "signal" and decision.changed == ("TLS",) and decision.files_changed
    poller.committed(tls)
    both = tls._replace(env={**tls.env, "DB": NEW}, files={"TLS": b"k3"})
    decision = settle(poller, clock, wall, both)
    assert decision.action == "restart" and decision.changed == ("DB", "TLS")


def test_signal_cannot_deliver_an_environment_variable_so_it_restarts():
    first = rendered({"DB": CANARY}, on_change={"DB": "signal"})
    poller, clock, wall, log = make(first=first)
    decision = settle(poller, clock, wall, rendered({"DB": NEW}, on_change={"DB": "signal"}))
    assert decision.action == "restart"
    assert any("not a file" in m for m in log.at("info"))


def test_on_change_exit_turns_restarts_into_exits():
    first = rendered({"DB": CANARY, "API": "a1"}, on_change={"API": "ignore"}, default="exit")
    poller, clock, wall, _ = make({"on_change": "exit"}, first=first)
    decision = settle(poller, clock, wall, first._replace(env={"DB": NEW, "API": "a1"}))
    assert decision.action == "exit"


def test_an_outage_keeps_the_values_warns_once_and_backs_off():
    poller, clock, wall, log = make(rand=1.0)
    delays = []
    for _ in range(10):
        before = clock.now
        assert poll(poller, clock, wall, outage()) is None
        delays.append(poller.next_deadline() - clock.now)
        assert before <= clock.now
    assert len(log.at("warning")) == 1
    assert "keeps running on its last good values" in log.at("warning")[0]
    # 1 s × 2ⁿ, capped at 60 s (rand=1.0: the top of the jitter range)
    assert [round(d, 6) for d in delays] == [2.0, 4.0, 8.0, 16.0, 32.0] + [60.0] * 5
    assert poller.stats["store_healthy"] is False
    # recovery with the same values: one info line, nothing to do
    assert poll(poller, clock, wall, rendered({"DB": CANARY, "API": "api-value-1"})) is None
    assert any("answer again" in m for m in log.at("info"))
    assert poller.stats["store_healthy"] is True and poller.next_deadline() - clock.now == pytest.approx(1.1)
    # the next outage warns again, once
    poll(poller, clock, wall, outage())
    poll(poller, clock, wall, outage("DENIED"))
    assert len(log.at("warning")) == 2
    assert_no_canary(log.text)


def test_backoff_jitter_spreads_between_half_and_full():
    for r, expected in ((0.0, 1.0), (1.0, 2.0)):
        poller, clock, wall, _ = make(rand=r)
        poll(poller, clock, wall, outage())
        assert poller.next_deadline() - clock.now == pytest.approx(expected)


def test_max_stale_is_off_by_default():
    poller, clock, wall, _ = make()
    for _ in range(200):
        assert poll(poller, clock, wall, outage()) is None
    assert clock.now - 1000 > 3600


def test_max_stale_stops_after_the_bound():
    poller, clock, wall, _ = make({"max_stale": 10.0}, rand=0.0)
    decisions = []
    for _ in range(10):
        decisions.append(poll(poller, clock, wall, outage()))
        if decisions[-1] is not None:
            break
    assert decisions[-1].action == "stale"
    assert clock.now - 1000 == pytest.approx(10.0)
    # the deadline itself wakes the supervisor, not only the next poll
    poller2, clock2, wall2, _ = make({"max_stale": 3.0}, rand=1.0)
    poll(poller2, clock2, wall2, outage())       # at 1.1 s, next poll at +2 s... capped by stale
    assert poller2.next_deadline() == pytest.approx(1000 + 3.0)
    clock2.now = poller2.next_deadline()
    assert poller2.check_stale(clock2.now).action == "stale"


def test_an_expiring_lease_forces_a_refresh_and_a_restart_even_for_ignore():
    first = rendered({"DB": CANARY}, on_change={"DB": "ignore"})
    poller, clock, wall, log = make({"poll_interval": 30.0}, first=first)
    poller.set_expiry(wall.now + 600)        # 10 min left: act 90 s before (60 s + one interval)
    assert poller.lease_deadline == pytest.approx(clock.now + 510)
    # ordinary polls until then see the same values
    while clock.now + 30 * 1.1 < 1000 + 510:
        assert poll(poller, clock, wall, first) is None
    decision = poll(poller, clock, wall, rendered({"DB": NEW}, on_change={"DB": "ignore"}))
    assert clock.now == pytest.approx(1000 + 510)
    assert decision.action == "restart" and "could not be renewed" in decision.reason


def test_an_expiring_lease_refresh_that_fails_is_retried_with_backoff():
    first = rendered({"DB": CANARY})
    poller, clock, wall, _ = make(first=first, rand=1.0)
    poller.set_expiry(wall.now + 2.0)        # short: act at half the time left
    assert poller.next_deadline() == pytest.approx(clock.now + 1.0)
    assert poll(poller, clock, wall, outage()) is None
    assert poller.forced is False and poller.lease_deadline == pytest.approx(clock.now + 2.0)
    decision = poll(poller, clock, wall, rendered({"DB": NEW}))
    assert decision.action == "restart"


def test_changed_variables_names_files_by_their_variable():
    a = rendered({"K": "/d/K", "X": "1111"}, files={"K": b"a"})
    b = rendered({"K": "/d/K", "X": "1111"}, files={"K": b"b"})
    assert changed_variables(a, b) == (("K",), True)
    assert changed_variables(a, a) == ((), False)


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


# --- throttling: slower polls, not an outage -------------------------------------------------


def throttled_error(retry_after=None, also_down=False):
    from secretrun.errors import Kind, Problem, ResolutionError, Throttled

    answer = Throttled("vault: rate limit exceeded (HTTP 429) (http://127.0.0.1:1)", retry_after=retry_after)
    problems = [Problem(Kind.UNAVAILABLE, str(answer), provider="vault", reference="${vault:secret/db}")]
    if also_down:
        problems.append(Problem(Kind.UNAVAILABLE, "store at http://127.0.0.1:2 did not answer", provider="aws"))
    error = ResolutionError(problems, title="could not refresh secrets")
    error.throttled = (answer,)
    return error


def test_throttling_doubles_the_interval_then_steps_back_one_interval_at_a_time():
    poller, clock, wall, log = make(rand=0.0)
    same = rendered({"DB": CANARY, "API": "api-value-1"})
    waits = []
    for _ in range(4):
        assert poll(poller, clock, wall, throttled_error()) is None
        waits.append(poller.next_deadline() - clock.now)
    assert [round(w, 6) for w in waits] == [2.0, 4.0, 8.0, 16.0]    # ×2, rand=0: the bottom of [1, 1.5)
    assert poller.stats["throttled"] and poller.stats["poll_interval_now"] == 16.0
    assert poller.stats["store_healthy"] and poller.stats["failed_polls"] == 0   # not an outage
    warnings = log.at("warning")
    assert len(warnings) == 1 and "throttling" in warnings[0]                   # once per episode
    intervals = []
    for _ in range(23):
        assert poll(poller, clock, wall, same) is None
        intervals.append(poller.stats["poll_interval_now"])
    # each answered poll takes a poll_interval off, or an eighth when that is more
    expected, interval = [], 16.0
    while interval > 1.0:
        interval = max(1.0, interval - max(1.0, interval / 8))
        expected.append(interval)
    assert expected[:3] == [14.0, 12.25, 12.25 - 12.25 / 8] and len(expected) == 13
    assert intervals == expected + [1.0] * 10
    assert not poller.stats["throttled"] and any("polling every poll_interval again" in m for m in log.at("info"))
    # never faster than configured: rand=0 is the bottom of the ±10% jitter
    assert poller.next_deadline() - clock.now == pytest.approx(0.9)
    assert_no_canary(log.text)


def test_retry_after_is_honoured_and_throttled_waits_spread_over_half_an_interval():
    poller, clock, wall, _ = make(rand=1.0)
    poll(poller, clock, wall, throttled_error(retry_after=30.0))
    assert poller.next_deadline() - clock.now == pytest.approx(45.0)   # interval 30 × (1 + 0.5)
    poller, clock, wall, _ = make(rand=0.0)
    poll(poller, clock, wall, throttled_error(retry_after=30.0))
    assert poller.next_deadline() - clock.now == pytest.approx(30.0)


def test_throttling_never_trips_max_stale_but_an_outage_with_it_does():
    poller, clock, wall, _ = make({"max_stale": 10.0}, rand=0.0)
    for _ in range(12):
        assert poll(poller, clock, wall, throttled_error()) is None
    assert clock.now - 1000 > 200 and poller.stats["throttled_polls"] == 12   # far beyond max_stale
    # throttled and another store down: an outage, at no faster pace than the throttling allows
    poller, clock, wall, _ = make({"max_stale": 100.0}, rand=0.0)
    poll(poller, clock, wall, throttled_error(also_down=True))
    assert poller.backoff.interval == 2.0 and poller.next_deadline() - clock.now == pytest.approx(2.0)
    assert poller.stats["store_healthy"] is False


def test_the_interval_is_capped_and_a_backed_off_fleet_is_spread():
    from secretrun.backoff import Backoff

    for base, cap in ((30.0, 30.0 * 32), (120.0, 3600.0), (1800.0, 7200.0)):
        b = Backoff(base, rand=lambda: 0.5)
        for _ in range(20):
            b.throttled()
        assert b.interval == cap
    import random

    rng = random.Random(7)
    waits = sorted(Backoff(30.0, rng.random).throttled() for _ in range(1000))
    assert 60.0 <= waits[0] and waits[-1] < 90.0 and waits[500] == pytest.approx(75.0, abs=3)
